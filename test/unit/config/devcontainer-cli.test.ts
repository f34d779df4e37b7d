import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { pinnedCliScript } from '../../../agent/src/devcontainer/cli-runner.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

describe('WARMSTART_DEVCONTAINER_CLI', () => {
  it('defaults to the pinned CLI from node_modules', () => {
    expect(configFromEnv({}).devcontainerCli).toBe(pinnedCliScript());
    expect(configFromEnv({ WARMSTART_DEVCONTAINER_CLI: '' }).devcontainerCli).toBe(pinnedCliScript());
    expect(pinnedCliScript()).toMatch(/node_modules\/@devcontainers\/cli\/devcontainer\.js$/);
  });

  it('takes an existing file by its absolute path', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'warmstart-cli-')), 'devcontainer.js');
    writeFileSync(script, '');
    expect(configFromEnv({ WARMSTART_DEVCONTAINER_CLI: script }).devcontainerCli).toBe(script);
  });

  it('refuses a missing file, a directory and a relative path with INVALID_ARGUMENT', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmstart-cli-'));
    for (const bad of [join(dir, 'missing.js'), dir, 'node_modules/@devcontainers/cli/devcontainer.js']) {
      let err: unknown;
      try {
        configFromEnv({ WARMSTART_DEVCONTAINER_CLI: bad });
      } catch (e) {
        err = e;
      }
      expect(isWarmstartError(err, 'INVALID_ARGUMENT'), bad).toBe(true);
      expect((err as Error).message).toMatch(/WARMSTART_DEVCONTAINER_CLI/);
    }
  });
});
