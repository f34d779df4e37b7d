/**
 * `--help` and `-h` on every command and subcommand: exit 0, that command's
 * usage on stdout, nothing run (no state dir is touched, stdin is not read).
 * Bare `warmstart` prints the whole usage.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';

let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'warmstart-help-'));
});
afterAll(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string; stdinRead: boolean }> {
  let out = '';
  let err = '';
  let stdinRead = false;
  const code = await main(argv, {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    readStdin: async () => ((stdinRead = true), ''),
    env: { WARMSTART_STATE_DIR: stateDir, WARMSTART_RUNTIME_DIR: join(stateDir, 'run') },
    cwd: stateDir,
  });
  return { code, out, err, stdinRead };
}

describe('help', () => {
  it.each([
    [['up', '--help'], 'warmstart up <repository>'],
    [['up', 'octo/app', '--workspace-id', 'w1', '-h'], 'warmstart up <repository>'],
    [['down', '-h'], 'warmstart down <workspace-id>'],
    [['prebuild', '--help'], 'warmstart prebuild <repository>'],
    [['cache', 'ref', '--help'], 'warmstart cache ref <repository>'],
    [['cache', 'prune', '--help', '--registry-password-stdin'], 'warmstart cache prune --registry'],
    [['image', 'create', '--help'], 'warmstart image create --workspace ID'],
    [['doctor', '--help'], 'warmstart doctor'],
    [['machine', 'up', '--help'], 'warmstart machine up --backend'],
    [['snapshot', '--help'], 'warmstart snapshot create|restore|list|delete'],
    [['serve', '--help'], 'warmstart serve [--listen HOST:PORT]'],
  ])('%j: exit 0, its usage only, nothing run', async (argv, line) => {
    const r = await run(argv);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out.startsWith('usage:\n')).toBe(true);
    expect(r.out).toContain(line);
    const commands = r.out.split('\n').filter((l) => l.startsWith('  warmstart '));
    expect(commands.length).toBeGreaterThan(0);
    for (const l of commands) expect(l.startsWith(`  warmstart ${argv[0]}`)).toBe(true);
    expect(r.stdinRead).toBe(false);
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('a command group shows each of its subcommands; bare warmstart and help show everything', async () => {
    const image = await run(['image', '--help']);
    expect(image.out).toContain('warmstart image create');
    expect(image.out).toContain('warmstart image list');
    expect(image.out).toContain('warmstart image rm');
    for (const argv of [[], ['help'], ['--help'], ['-h']]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain('warmstart up <repository>');
      expect(r.out).toContain('warmstart serve');
    }
  });

  it('after `--` it is an argument, not a request for help; an unknown command is still refused', async () => {
    const r = await run(['frobnicate', '--', '--help']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
  });
});
