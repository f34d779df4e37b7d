/**
 * `version` prints the version; `version --json` what a bug report needs:
 * version, commit, Node, the devcontainers CLI and the engine (or why not).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';
import { packageCommit } from '../../../agent/src/cli/version.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: () => undefined, readStdin: async () => '', env: {}, cwd: ROOT });
  return { code, out };
}

describe('version', () => {
  it('--json: version, commit, node, devcontainers CLI, and the engine or why not', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const cli = JSON.parse(await readFile(join(ROOT, 'node_modules/@devcontainers/cli/package.json'), 'utf8')) as { version: string };
    for (const argv of [
      ['version', '--json'],
      ['--version', '--json'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      const v = JSON.parse(r.out) as Record<string, unknown>;
      expect(v).toMatchObject({ version: pkg.version, node: process.version, devcontainersCli: cli.version });
      expect(v.commit).toBe(execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim());
      if (v.engine === null) expect(v.engineError).toMatch(/DOCKER_UNAVAILABLE/);
      else expect(v.engine).toMatchObject({ version: expect.any(String), apiVersion: expect.stringMatching(/^1\.\d+$/) });
    }
    expect((await run(['version'])).out).toBe(`${pkg.version}\n`);
  });

  it('reads the commit through a symbolic ref, loose or packed; none outside a checkout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-version-'));
    try {
      expect(packageCommit(dir)).toBeNull();
      await mkdir(join(dir, '.git', 'refs', 'heads'), { recursive: true });
      await writeFile(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
      await writeFile(join(dir, '.git', 'packed-refs'), `# pack-refs with: peeled\n${'b'.repeat(40)} refs/heads/main\n`);
      expect(packageCommit(dir)).toBe('b'.repeat(40));
      await writeFile(join(dir, '.git', 'refs', 'heads', 'main'), `${'a'.repeat(40)}\n`);
      expect(packageCommit(dir)).toBe('a'.repeat(40));
      await writeFile(join(dir, '.git', 'HEAD'), `${'c'.repeat(40)}\n`); // detached
      expect(packageCommit(dir)).toBe('c'.repeat(40));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the commit of an installed release', () => {
  it('is the one its release.json records (deploy/release.sh); anything else there is no commit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-release-root-'));
    try {
      expect(packageCommit(dir)).toBeNull();
      const commit = 'a'.repeat(40);
      await writeFile(join(dir, 'release.json'), JSON.stringify({ version: '0.1.0', commit }));
      expect(packageCommit(dir)).toBe(commit);
      await writeFile(join(dir, 'release.json'), JSON.stringify({ version: '0.1.0', commit: 'not a commit; rm -rf /' }));
      expect(packageCommit(dir)).toBeNull();
      await writeFile(join(dir, 'release.json'), '{ broken');
      expect(packageCommit(dir)).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
