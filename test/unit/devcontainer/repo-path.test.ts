/**
 * The one path rule (devcontainer/repo-path.ts) on a real directory tree with
 * real symlinks: what stays in the repository resolves, what leaves it is
 * refused with the words the config errors show.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPathError, RepoPaths } from '../../../agent/src/devcontainer/repo-path.js';

let dir: string;
let repo: string;
let paths: RepoPaths;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-repo-path-'));
  repo = join(dir, 'repo');
  await mkdir(join(repo, '.devcontainer'), { recursive: true });
  await mkdir(join(dir, 'outside'));
  await writeFile(join(repo, '.devcontainer', 'Dockerfile'), 'FROM x\n');
  await writeFile(join(dir, 'outside', 'secret'), 'no\n');
  await symlink(join(dir, 'outside'), join(repo, 'out-dir'));
  await symlink('.devcontainer', join(repo, 'in-dir'));
  await symlink(join(repo, 'gone'), join(repo, 'dangling'));
  paths = await RepoPaths.of(repo);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const why = async (value: string): Promise<string | null> => {
  try {
    await paths.resolve(join(repo, '.devcontainer'), value);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(RepoPathError);
    return (err as RepoPathError).why;
  }
};

describe('RepoPaths.resolve', () => {
  it('resolves what stays inside, symlinks within the repository included; a missing path resolves to no real file', async () => {
    const base = join(repo, '.devcontainer');
    expect(await paths.resolve(base, 'Dockerfile')).toMatchObject({
      rel: '.devcontainer/Dockerfile',
      real: join(paths.realRoot, '.devcontainer', 'Dockerfile'),
    });
    expect(await paths.resolve(base, '..')).toMatchObject({ rel: '.', real: paths.realRoot });
    expect(await paths.resolve(base, '../in-dir/Dockerfile')).toMatchObject({
      rel: 'in-dir/Dockerfile',
      real: join(paths.realRoot, '.devcontainer', 'Dockerfile'),
    });
    expect(await paths.resolve(base, '${localWorkspaceFolder}/.devcontainer/Dockerfile')).toMatchObject({ rel: '.devcontainer/Dockerfile' });
    expect(await paths.resolve(base, 'not-there/x')).toMatchObject({ rel: '.devcontainer/not-there/x', real: null });
  });

  it('refuses a path outside, through a symlink (also for a file not there yet), a dangling symlink and host variables', async () => {
    expect(await why('../../outside/secret')).toBe('points outside the repository');
    expect(await why('/etc/passwd')).toBe('points outside the repository');
    expect(await why('../out-dir/secret')).toBe('leads outside the repository through a symlink');
    expect(await why('../out-dir/not-yet')).toBe('leads outside the repository through a symlink');
    expect(await why('../dangling')).toBe('is a symlink that leads nowhere');
    expect(await why('${env:HOME}/x')).toBe('uses a variable other than ${localWorkspaceFolder}: a path must stay in the repository');
  });
});
