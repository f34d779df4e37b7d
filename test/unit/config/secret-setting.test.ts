/**
 * Secret settings as a value, a `_FILE` or a systemd credential
 * (config/secret-setting.ts), and the node's settings that use them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { secretSetting } from '../../../agent/src/config/secret-setting.js';
import { authOptionsFromEnv } from '../../../agent/src/server/auth-config.js';

let dir: string;
let creds: string;
const TOKEN = 'ghp_secret_token_value_0123456789';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-secret-'));
  creds = join(dir, 'credentials');
  await writeFile(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'empty'), '\n');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(creds);
  await writeFile(join(creds, 'WARMSTART_REGISTRY_PASSWORD'), 'registry-pass-from-credential');
  await writeFile(join(creds, 'WARMSTART_API_TOKEN'), 'api-token-from-credential-0123');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const message = (f: () => unknown): string => {
  try {
    f();
    return '';
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
};

describe('secretSetting', () => {
  it('the value, else the file (last newline dropped), else the systemd credential, else none', () => {
    expect(secretSetting({ WARMSTART_GIT_TOKEN: 'v' }, 'WARMSTART_GIT_TOKEN')).toBe('v');
    expect(secretSetting({ WARMSTART_GIT_TOKEN_FILE: join(dir, 'token') }, 'WARMSTART_GIT_TOKEN')).toBe(TOKEN);
    expect(secretSetting({ CREDENTIALS_DIRECTORY: creds }, 'WARMSTART_REGISTRY_PASSWORD')).toBe('registry-pass-from-credential');
    expect(secretSetting({ CREDENTIALS_DIRECTORY: creds }, 'WARMSTART_GIT_TOKEN')).toBeNull(); // no such credential
    expect(secretSetting({}, 'WARMSTART_GIT_TOKEN')).toBeNull();
  });

  it('refuses both at once, a file that is missing or empty; names the path, never the content', () => {
    expect(message(() => secretSetting({ WARMSTART_GIT_TOKEN: 'v', WARMSTART_GIT_TOKEN_FILE: join(dir, 'token') }, 'WARMSTART_GIT_TOKEN'))).toBe(
      'INVALID_ARGUMENT: WARMSTART_GIT_TOKEN and WARMSTART_GIT_TOKEN_FILE are both set: give one',
    );
    expect(message(() => secretSetting({ WARMSTART_GIT_TOKEN_FILE: join(dir, 'nope') }, 'WARMSTART_GIT_TOKEN'))).toBe(
      `INVALID_ARGUMENT: cannot read WARMSTART_GIT_TOKEN_FILE ${join(dir, 'nope')}`,
    );
    expect(message(() => secretSetting({ WARMSTART_GIT_TOKEN_FILE: join(dir, 'empty') }, 'WARMSTART_GIT_TOKEN'))).toMatch(/is empty$/);
    expect(message(() => secretSetting({ WARMSTART_GIT_TOKEN_FILE: dir }, 'WARMSTART_GIT_TOKEN'))).not.toContain(TOKEN);
  });

  it("is how the node's git token, registry password and API token are read", () => {
    const config = configFromEnv({ WARMSTART_GIT_TOKEN_FILE: join(dir, 'token'), CREDENTIALS_DIRECTORY: creds, WARMSTART_REGISTRY_USERNAME: 'u' });
    expect(config.gitToken).toBe(TOKEN);
    expect(config.registryPassword).toBe('registry-pass-from-credential');
    expect(authOptionsFromEnv({ CREDENTIALS_DIRECTORY: creds })).toEqual({ mode: 'bearer', token: 'api-token-from-credential-0123' });
  });
});
