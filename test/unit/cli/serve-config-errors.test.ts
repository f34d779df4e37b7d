/**
 * `warmstart serve` with a configuration it cannot run with exits 2 (the
 * unit's RestartPreventExitStatus=2 stops systemd's restart loop) before it
 * touches anything on the node: no engine call, no state or runtime dir.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';

let dir: string;
let tokenFile: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-serve-config-'));
  tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'a-token-long-enough-0123456789\n', { mode: 0o600 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function serve(env: Record<string, string>, args: string[] = []): Promise<{ code: number; err: string }> {
  let err = '';
  const state = join(dir, 'state');
  const code = await main(['serve', ...args], {
    stdout: () => undefined,
    stderr: (t) => void (err += t),
    readStdin: async () => '',
    env: { WARMSTART_STATE_DIR: state, WARMSTART_RUNTIME_DIR: join(dir, 'run'), ...env },
    cwd: dir,
  });
  return { code, err };
}

describe('serve: configuration errors', () => {
  it.each([
    ['no API authentication', { WARMSTART_API_TOKEN_FILE: '' }, [], /no API authentication configured/],
    ['a token file that is not there', { WARMSTART_API_TOKEN_FILE: '/nonexistent/token' }, [], /WARMSTART_API_TOKEN_FILE/],
    ['a listen address that is not one', {}, ['--listen', 'not an address'], /listen|address/i],
    [
      'a TLS certificate that is not there',
      { WARMSTART_TLS_CERT_FILE: '/nonexistent/cert.pem', WARMSTART_TLS_KEY_FILE: '/nonexistent/key.pem' },
      [],
      /TLS|cert/i,
    ],
  ] as const)('%s: exit 2 with INVALID_ARGUMENT, nothing on the node touched', async (_what, env, args, words) => {
    const r = await serve({ WARMSTART_API_TOKEN_FILE: tokenFile, ...env }, [...args]);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/INVALID_ARGUMENT/);
    expect(r.err).toMatch(words);
    expect((await readdir(dir)).sort()).toEqual(['token']);
  });
});
