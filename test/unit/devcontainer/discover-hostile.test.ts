import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverConfig, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, tooDeepAt } from '../../../agent/src/devcontainer/discover.js';
import { rejection } from '../../support/rejection.js';
import { useScratchRepo } from '../../support/scratch-repo.js';

/** Configs written to do harm: nested without end, or pointing out of the repository. */
const scratch = useScratchRepo('warmstart-discover-hostile');
const put = scratch.put;

const config = (c: unknown): Promise<string> => put('.devcontainer/devcontainer.json', JSON.stringify(c));

describe('tooDeepAt', () => {
  it('finds the bracket that opens one level too many', () => {
    expect(tooDeepAt('[[1]]', 2)).toBe(-1);
    expect(tooDeepAt('[[[1]]]', 2)).toBe(2);
    expect(tooDeepAt('{"a":{"b":{}}}', 2)).toBe(10);
  });

  it('counts levels, not brackets: siblings do not add up', () => {
    expect(tooDeepAt(`[${'[1],'.repeat(1000)}[2]]`, 2)).toBe(-1);
  });

  it('skips brackets inside strings, escaped quotes and comments', () => {
    expect(tooDeepAt('{"a": "[[[[{{{{", "b\\"[[[": 1}', 1)).toBe(-1);
    expect(tooDeepAt('{ // [[[[\n "a": 1 /* {{{{ */ }', 1)).toBe(-1);
    // A string the parser ends at the line break does not hide what follows.
    expect(tooDeepAt('{"a": "open\n[[', 2)).toBe(13);
  });
});

describe('discoverConfig: nesting', () => {
  it.each([
    ['objects', `{"image": "x", "a": ${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`],
    ['arrays', `{"image": "x", "a": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`],
    ['unclosed', `{"image": "x", "a": ${'['.repeat(100_000)}`],
  ])('refuses %s nested 10,000 levels with a clear error, not a stack overflow', async (_shape, text) => {
    await put('.devcontainer.json', text);
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toBe(`.devcontainer.json nests objects or arrays deeper than ${MAX_CONFIG_DEPTH} levels`);
    expect(err.detail).toMatch(/^\.devcontainer\.json:1:\d+: level 65 opens here$/);
  });

  it(`accepts ${MAX_CONFIG_DEPTH} levels`, async () => {
    const inner = MAX_CONFIG_DEPTH - 1; // the root object is the first level
    await put('.devcontainer.json', `{"image": "x", "a": ${'['.repeat(inner)}${']'.repeat(inner)}}`);
    expect((await discoverConfig(scratch.repo))?.kind).toBe('image');
  });

  it('names the size limit', async () => {
    await put('.devcontainer.json', `{"image": "x", "pad": "${'a'.repeat(MAX_CONFIG_BYTES)}"}`);
    expect((await rejection(discoverConfig(scratch.repo))).message).toMatch(/the limit is 1 MiB \(1048576 bytes\)$/);
  });
});

describe('discoverConfig: paths out of the repository', () => {
  it.each([
    ['build.dockerfile', { build: { dockerfile: '../../etc/passwd' } }, '"../../etc/passwd" points outside'],
    ['build.dockerfile', { build: { dockerfile: '/etc/passwd' } }, '"/etc/passwd" points outside'],
    ['build.context', { build: { dockerfile: 'Dockerfile', context: '../..' } }, '"../.." points outside'],
    ['build.context', { build: { dockerfile: 'Dockerfile', context: '/' } }, '"/" points outside'],
    ['dockerFile', { dockerFile: '../../Dockerfile' }, '"../../Dockerfile" points outside'],
    ['context', { dockerFile: 'Dockerfile', context: '../../..' }, '"../../.." points outside'],
    ['dockerComposeFile', { dockerComposeFile: '/srv/compose.yml' }, '"/srv/compose.yml" points outside'],
    ['dockerComposeFile[1]', { dockerComposeFile: ['compose.yml', '../../compose.yml'] }, '"../../compose.yml" points outside'],
    ['features["../../x"]', { image: 'x', features: { '../../x': {} } }, '"../../x" points outside'],
    ['build.dockerfile', { build: { dockerfile: '${localEnv:HOME}/Dockerfile' } }, 'uses a variable other than ${localWorkspaceFolder}'],
    ['build.context', { build: { dockerfile: 'Dockerfile', context: '${localWorkspaceFolder}/..' } }, 'points outside'],
  ])('refuses %s out of the repo', async (field, c, why) => {
    await config(c);
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain(`.devcontainer/devcontainer.json: ${field} `);
    expect(err.message).toContain(why);
  });

  it('accepts paths inside, including the repo root, ${localWorkspaceFolder} and files that do not exist yet', async () => {
    await config({
      build: { dockerfile: '${localWorkspaceFolder}/.devcontainer/Dockerfile', context: '..' },
      features: { './feat': {}, 'ghcr.io/devcontainers/features/node:1': {} },
    });
    expect((await discoverConfig(scratch.repo))?.kind).toBe('dockerfile');
    await config({ dockerComposeFile: ['../compose.yml', 'more.yml'], service: 'app' });
    expect((await discoverConfig(scratch.repo))?.kind).toBe('compose');
  });

  it('refuses a Dockerfile that is a symlink out of the repo', async () => {
    await writeFile(path.join(scratch.base, 'Dockerfile'), 'FROM secret\n');
    await config({ build: { dockerfile: 'Dockerfile' } });
    await symlink(path.join(scratch.base, 'Dockerfile'), path.join(scratch.repo, '.devcontainer', 'Dockerfile'));
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.message).toBe('.devcontainer/devcontainer.json: build.dockerfile "Dockerfile" leads outside the repository through a symlink');
  });

  it('refuses a path below a directory symlinked out of the repo, even when the file is missing', async () => {
    await mkdir(path.join(scratch.base, 'outside'));
    await symlink(path.join(scratch.base, 'outside'), path.join(scratch.repo, 'linked'));
    await config({ build: { dockerfile: '../linked/Dockerfile', context: '../linked' } });
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.message).toContain('build.dockerfile "../linked/Dockerfile" leads outside the repository through a symlink');
  });

  it('refuses a local feature folder symlinked out of the repo', async () => {
    await mkdir(path.join(scratch.base, 'feature'));
    await config({ image: 'x', features: { './feat': {} } });
    await symlink(path.join(scratch.base, 'feature'), path.join(scratch.repo, '.devcontainer', 'feat'));
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.message).toContain('features["./feat"] "./feat" leads outside the repository through a symlink');
  });

  it('refuses a dangling symlink, and accepts one that stays inside', async () => {
    await config({ build: { dockerfile: 'Dockerfile' } });
    await symlink(path.join(scratch.base, 'nowhere'), path.join(scratch.repo, '.devcontainer', 'Dockerfile'));
    expect((await rejection(discoverConfig(scratch.repo))).message).toContain('is a symlink that leads nowhere');
    await rm(path.join(scratch.repo, '.devcontainer', 'Dockerfile'));
    await put('docker/Dockerfile.dev', 'FROM x\n');
    await symlink('../docker/Dockerfile.dev', path.join(scratch.repo, '.devcontainer', 'Dockerfile'));
    expect((await discoverConfig(scratch.repo))?.kind).toBe('dockerfile');
  });

  it('refuses a symlink loop and an unusable name with the field, and keeps a long value short', async () => {
    await symlink('loop-b', path.join(scratch.repo, 'loop-a'));
    await symlink('loop-a', path.join(scratch.repo, 'loop-b'));
    await config({ build: { dockerfile: '../loop-a' } });
    expect((await rejection(discoverConfig(scratch.repo))).message).toContain('build.dockerfile "../loop-a" cannot be resolved (ELOOP)');
    await config({ build: { dockerfile: 'D'.repeat(5000) } });
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toMatch(/build\.dockerfile "D{200}…" cannot be resolved \(ENAMETOOLONG\)$/);
  });
});
