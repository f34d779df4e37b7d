import { lstat, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, computeContentKey } from '../../../agent/src/cache/content-key.js';
import { compileGlob, DockerIgnore } from '../../../agent/src/cache/dockerignore.js';
import type { DiscoveredConfig } from '../../../agent/src/devcontainer/discover.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

/** The content key over a repository that tries to make it read or recurse too far. */
let base: string;
let repo: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'warmstart-key-hostile-'));
  repo = path.join(base, 'repo');
  await mkdir(path.join(repo, '.devcontainer'), { recursive: true });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function discovered(config: Record<string, unknown>): DiscoveredConfig {
  const p = path.join(repo, '.devcontainer', 'devcontainer.json');
  return { path: p, relativePath: '.devcontainer/devcontainer.json', text: JSON.stringify(config), config, kind: 'dockerfile' };
}

function nested(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

describe('canonicalJson on deep values', () => {
  it('refuses 10,000 levels with DEVCONTAINER_CONFIG_INVALID instead of overflowing the stack', () => {
    let thrown: unknown;
    try {
      canonicalJson(nested(10_000));
    } catch (err) {
      thrown = err;
    }
    expect(isWarmstartError(thrown, 'DEVCONTAINER_CONFIG_INVALID')).toBe(true);
    expect((thrown as Error).message).toMatch(/deeper than 100 levels/);
  });

  it('handles the depth discovery lets through', () => {
    const v = nested(64);
    expect(canonicalJson(v)).toBe(JSON.stringify(v)); // one key per object: nothing to sort
  });
});

describe('computeContentKey bounds the work a .dockerignore can ask for', () => {
  it('gives up past the pattern-test limit instead of running for hours', async () => {
    await writeFile(path.join(repo, '.devcontainer', 'Dockerfile'), 'FROM x\nCOPY . /app\n');
    await writeFile(path.join(repo, '.dockerignore'), Array.from({ length: 200 }, (_, i) => `rule-${i}/**/*.tmp`).join('\n'));
    await mkdir(path.join(repo, 'src'));
    for (let i = 0; i < 100; i++) await writeFile(path.join(repo, 'src', `f${i}.ts`), `${i}\n`);
    const input = { discovered: discovered({ build: { dockerfile: 'Dockerfile', context: '..' } }), repoDir: repo, platform: 'linux/amd64' };
    const err = await computeContentKey({ ...input, maxPatternTests: 10_000 }).catch((e: unknown) => e);
    expect(isWarmstartError(err, 'DEVCONTAINER_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toBe('the build context and its .dockerignore take more than 10000 pattern tests to filter');
    // The default limit is far above what this repo needs.
    expect((await computeContentKey(input)).inputs).toContain('file:src/f0.ts');
  });
});

describe('computeContentKey never reads through a symlink out of the repo', () => {
  /** A file outside the repo, its atime set long ago: reading it moves the atime. */
  async function canary(): Promise<{ file: string; read: () => Promise<boolean> }> {
    const dir = path.join(base, 'outside');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, 'secret.txt');
    await writeFile(file, 'secret\n');
    const old = new Date('2001-01-01T00:00:00Z');
    await utimes(file, old, (await lstat(file)).mtime);
    const atime = (await lstat(file)).atimeMs;
    return { file, read: async () => (await lstat(file)).atimeMs !== atime };
  }

  it('COPY . with a file and a dir symlinked out: links hashed by their text, targets unread', async () => {
    const c = await canary();
    await writeFile(path.join(repo, '.devcontainer', 'Dockerfile'), 'FROM x\nCOPY . /app\n');
    await symlink(c.file, path.join(repo, 'secret.txt'));
    await symlink(path.dirname(c.file), path.join(repo, 'linked'));
    const key = await computeContentKey({
      discovered: discovered({ build: { dockerfile: 'Dockerfile', context: '..' } }),
      repoDir: repo,
      platform: 'linux/amd64',
    });
    expect(key.inputs).toEqual(expect.arrayContaining(['file:secret.txt (symlink)', 'file:linked (symlink)']));
    expect(key.inputs.some((i) => i.includes('outside'))).toBe(false);
    expect(await c.read()).toBe(false);
  });

  it('COPY of a named link and a link dir out: recorded as links, targets unread', async () => {
    const c = await canary();
    await writeFile(path.join(repo, '.devcontainer', 'Dockerfile'), 'FROM x\nCOPY secret.txt /s\nCOPY linked/ /l/\nCOPY link* /m/\n');
    await symlink(c.file, path.join(repo, 'secret.txt'));
    await symlink(path.dirname(c.file), path.join(repo, 'linked'));
    const key = await computeContentKey({
      discovered: discovered({ build: { dockerfile: 'Dockerfile', context: '..' } }),
      repoDir: repo,
      platform: 'linux/amd64',
    });
    expect(key.inputs).toEqual(expect.arrayContaining(['file:secret.txt (symlink)', 'file:linked (symlink)']));
    expect(await c.read()).toBe(false);
  });

  it('a .dockerignore or lockfile that links out is refused, unread', async () => {
    const c = await canary();
    await writeFile(path.join(repo, '.devcontainer', 'Dockerfile'), 'FROM x\n');
    await symlink(c.file, path.join(repo, '.dockerignore'));
    const err = await computeContentKey({
      discovered: discovered({ build: { dockerfile: 'Dockerfile', context: '..' } }),
      repoDir: repo,
      platform: 'linux/amd64',
    }).catch((e: unknown) => e);
    expect(isWarmstartError(err, 'DEVCONTAINER_CONFIG_INVALID')).toBe(true);
    await rm(path.join(repo, '.dockerignore'));
    await symlink(c.file, path.join(repo, '.devcontainer', 'devcontainer-lock.json'));
    const err2 = await computeContentKey({
      discovered: discovered({ build: { dockerfile: 'Dockerfile', context: '..' } }),
      repoDir: repo,
      platform: 'linux/amd64',
    }).catch((e: unknown) => e);
    expect(isWarmstartError(err2, 'DEVCONTAINER_CONFIG_INVALID')).toBe(true);
    expect(await c.read()).toBe(false);
  });
});

/**
 * The old matcher compiled patterns to a RegExp: the same rules, but a
 * backtracking engine. Kept here as the reference the new one must agree with.
 */
function referenceRegExp(pattern: string, doubleStar: boolean): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (doubleStar && pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') i++;
        out += i + 1 >= pattern.length ? '.*' : '(?:.*/)?';
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i);
      out += pattern.slice(i, end + 1);
      i = end;
    } else out += ch === '/' ? '\\/' : ch;
  }
  return new RegExp(`^${out}$`, 'u');
}

function* strings(alphabet: string[], maxLength: number): Generator<string> {
  let level = [''];
  yield '';
  for (let n = 1; n <= maxLength; n++) {
    const nextLevel: string[] = [];
    for (const s of level) for (const a of alphabet) nextLevel.push(s + a);
    yield* nextLevel;
    level = nextLevel;
  }
}

describe('patterns a backtracking RegExp would take hours over', () => {
  const nearMiss = `${'a/'.repeat(30)}b`;

  it('.dockerignore: a line of twenty **/ against a deep path that does not match', () => {
    const ig = new DockerIgnore(`${'**/'.repeat(20)}nomatch\n${'**/a'.repeat(20)}/x\n`);
    expect(ig.ignores(nearMiss)).toBe(false);
    expect(new DockerIgnore(`${'**/'.repeat(20)}b`).ignores(nearMiss)).toBe(true);
  });

  it("COPY wildcards: *a*a*a... against a name of a's that lacks the last letter", () => {
    const glob = compileGlob(`${'*a'.repeat(30)}X`)!;
    expect(glob.test('a'.repeat(60))).toBe(false);
    expect(glob.test(`${'a'.repeat(60)}X`)).toBe(true);
    const q = compileGlob(`${'?*'.repeat(30)}X`)!;
    expect(q.test('a'.repeat(60))).toBe(false);
  });

  it('agrees with the RegExp it replaced on every short pattern and path', () => {
    const paths = [...strings(['a', 'b', '/'], 5)];
    let compared = 0;
    for (const pattern of strings(['a', 'b', '/', '*', '?', '[ab]'], 4)) {
      for (const doubleStar of [false, true]) {
        const glob = compileGlob(pattern, doubleStar)!;
        const ref = referenceRegExp(pattern, doubleStar);
        for (const p of paths) {
          const expected = ref.test(p);
          if (glob.test(p) !== expected) {
            throw new Error(`${JSON.stringify(pattern)} (doubleStar ${doubleStar}) on ${JSON.stringify(p)}: RegExp says ${expected}`);
          }
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(1_000_000);
  });
});
