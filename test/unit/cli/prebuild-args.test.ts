import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';
import type { Io } from '../../../agent/src/cli/output.js';

// Bad input to `warmstart prebuild` is refused before the engine, the registry
// or git is asked anything: exit 2, a stable code, and an empty state dir.
// (DOCKER_HOST points nowhere, so a command that got as far as Docker would fail differently.)
describe('warmstart prebuild: bad input', () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'prebuild-args-'));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  async function run(argv: string[], env: Record<string, string> = {}, stdin = ''): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: Io = {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      readStdin: async () => stdin,
      env: { WARMSTART_STATE_DIR: stateDir, WARMSTART_RUNTIME_DIR: join(stateDir, 'run'), DOCKER_HOST: 'unix:///nonexistent.sock', ...env },
      cwd: stateDir,
    };
    const code = await main(['prebuild', ...argv], io);
    return { code, out, err };
  }

  it.each([
    ['no repository', [], 'INVALID_ARGUMENT'],
    ['two repositories', ['octo/a', 'octo/b'], 'INVALID_ARGUMENT'],
    ['a workspace id (a prebuild keeps no workspace)', ['octo/a', '--workspace-id', 'x'], 'INVALID_ARGUMENT'],
    // A prebuild exists to push: the flags that would turn the push or the build off are not taken.
    ['--no-push', ['octo/a', '--cache-registry', '127.0.0.1:5000', '--no-push'], 'INVALID_ARGUMENT'],
    ['--no-cache', ['octo/a', '--cache-registry', '127.0.0.1:5000', '--no-cache'], 'INVALID_ARGUMENT'],
    ['--lightweight', ['octo/a', '--cache-registry', '127.0.0.1:5000', '--lightweight'], 'INVALID_ARGUMENT'],
    ['a repository that is not one', ['not a repo'], 'INVALID_REPOSITORY'],
    ['a bad config name', ['octo/a', '--config-name', '../etc'], 'INVALID_CONFIG_NAME'],
    ['an empty cache registry', ['octo/a', '--cache-registry', ''], 'INVALID_REGISTRY'],
    ['a username without --registry-password-stdin', ['octo/a', '--registry-username', 'u'], 'INVALID_ARGUMENT'],
    ['no cache registry at all', ['octo/a'], 'INVALID_REGISTRY'],
  ])('%s → exit 2, %s, nothing created', async (_what, argv, code) => {
    const r = await run([...argv, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out)).toMatchObject({ error: { code } });
    expect(r.err).toContain(`warmstart: ${code}:`);
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('--registry-password-stdin without a username → exit 2; the password is not echoed', async () => {
    const r = await run(['octo/a', '--cache-registry', '127.0.0.1:5000', '--registry-password-stdin'], {}, 'hunter2-secret\n');
    expect(r.code).toBe(2);
    expect(r.err).toContain('INVALID_ARGUMENT');
    expect(r.out + r.err).not.toContain('hunter2-secret');
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('is listed in the usage text', async () => {
    let out = '';
    await main(['--help'], { stdout: (t) => void (out += t), stderr: () => undefined, readStdin: async () => '', env: {}, cwd: stateDir });
    expect(out).toContain('warmstart prebuild <repository>');
  });
});
