import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverConfig, MAX_CONFIG_BYTES } from '../../../agent/src/devcontainer/discover.js';
import { rejection } from '../../support/rejection.js';
import { useScratchRepo } from '../../support/scratch-repo.js';

const scratch = useScratchRepo('warmstart-discover');
const put = scratch.put;

describe('discoverConfig', () => {
  it('finds a named config under .devcontainer/<name>/', async () => {
    await put('.devcontainer/devcontainer.json', '{"image": "default"}');
    const file = await put('.devcontainer/python/devcontainer.json', '{"image": "python:3"}');
    const found = await discoverConfig(scratch.repo, 'python');
    expect(found).toMatchObject({
      path: file,
      relativePath: '.devcontainer/python/devcontainer.json',
      config: { image: 'python:3' },
      kind: 'image',
    });
  });

  it('prefers .devcontainer/devcontainer.json over .devcontainer.json', async () => {
    await put('.devcontainer.json', '{"image": "root"}');
    await put('.devcontainer/devcontainer.json', '{"build": {"dockerfile": "Dockerfile"}}');
    const found = await discoverConfig(scratch.repo);
    expect(found?.relativePath).toBe('.devcontainer/devcontainer.json');
    expect(found?.kind).toBe('dockerfile');
  });

  it('falls back to .devcontainer.json at the root', async () => {
    const text = '{"dockerComposeFile": "compose.yml", "service": "app"}';
    await put('.devcontainer.json', text);
    const found = await discoverConfig(scratch.repo, null);
    expect(found).toMatchObject({ relativePath: '.devcontainer.json', text, kind: 'compose' });
  });

  it('returns null when the repo has no config', async () => {
    await put('README.md', 'hello');
    expect(await discoverConfig(scratch.repo)).toBeNull();
  });

  it('refuses a named config that is missing instead of falling back', async () => {
    await put('.devcontainer/devcontainer.json', '{"image": "default"}');
    const err = await rejection(discoverConfig(scratch.repo, 'go'));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('.devcontainer/go/devcontainer.json');
  });

  it('refuses a config name that is not one path segment', async () => {
    const err = await rejection(discoverConfig(scratch.repo, '../x'));
    expect(err.code).toBe('INVALID_CONFIG_NAME');
  });

  it('refuses a config that is a symlink out of the repo', async () => {
    const outside = path.join(scratch.base, 'outside.json');
    await writeFile(outside, '{"image": "evil"}');
    await mkdir(path.join(scratch.repo, '.devcontainer'));
    await symlink(outside, path.join(scratch.repo, '.devcontainer', 'devcontainer.json'));
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('outside the repository');
  });

  it('refuses a .devcontainer directory that is a symlink out of the repo', async () => {
    await mkdir(path.join(scratch.base, 'elsewhere'));
    await writeFile(path.join(scratch.base, 'elsewhere', 'devcontainer.json'), '{"image": "evil"}');
    await symlink(path.join(scratch.base, 'elsewhere'), path.join(scratch.repo, '.devcontainer'));
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });

  it('accepts a symlink that stays inside the repo and keeps the link path', async () => {
    await put('configs/shared.json', '{"image": "shared"}');
    await mkdir(path.join(scratch.repo, '.devcontainer'));
    const link = path.join(scratch.repo, '.devcontainer', 'devcontainer.json');
    await symlink('../configs/shared.json', link);
    const found = await discoverConfig(scratch.repo);
    // The CLI resolves relative paths against the path it is given, i.e. the link.
    expect(found?.path).toBe(link);
    expect(found?.config).toEqual({ image: 'shared' });
  });

  it('refuses a dangling symlink rather than skipping it', async () => {
    await mkdir(path.join(scratch.repo, '.devcontainer'));
    await symlink('nowhere.json', path.join(scratch.repo, '.devcontainer', 'devcontainer.json'));
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });

  it('refuses a file over 1 MiB', async () => {
    await put('.devcontainer.json', `{"image": "x", "pad": "${'a'.repeat(MAX_CONFIG_BYTES)}"}`);
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('too large');
  });

  it('parses JSONC with comments and trailing commas, leaving variables verbatim', async () => {
    await put(
      '.devcontainer/devcontainer.json',
      [
        '// a dev container',
        '{',
        '  /* build it */',
        '  "build": { "dockerfile": "Dockerfile", "context": "..", },',
        '  "containerEnv": { "HOME_DIR": "${localEnv:HOME}", },',
        '  "features": { "./myfeat": {}, },',
        '}',
      ].join('\n'),
    );
    const found = await discoverConfig(scratch.repo);
    expect(found?.config).toEqual({
      build: { dockerfile: 'Dockerfile', context: '..' },
      containerEnv: { HOME_DIR: '${localEnv:HOME}' },
      features: { './myfeat': {} },
    });
    expect(found?.kind).toBe('dockerfile');
  });

  it('refuses invalid JSON and says where', async () => {
    await put('.devcontainer/devcontainer.json', '{\n  "image": "x"\n  "name": "y"\n}');
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.detail).toMatch(/devcontainer\.json:3:3: CommaExpected \(offset \d+\)/);
  });

  it('refuses a root that is not an object', async () => {
    await put('.devcontainer.json', '["image"]');
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.detail).toContain('array');
  });

  it('classifies the legacy top-level dockerFile as a dockerfile config', async () => {
    await put('.devcontainer.json', '{"dockerFile": "Dockerfile", "context": "."}');
    expect((await discoverConfig(scratch.repo))?.kind).toBe('dockerfile');
  });

  it('follows the CLI: a Dockerfile wins over image, image wins over compose', async () => {
    await put('.devcontainer.json', '{"image": "x", "dockerComposeFile": "c.yml"}');
    expect((await discoverConfig(scratch.repo))?.kind).toBe('image');
    await put('.devcontainer.json', '{"image": "x", "build": {"dockerfile": "Dockerfile"}}');
    expect((await discoverConfig(scratch.repo))?.kind).toBe('dockerfile');
  });

  it('refuses a config that names nothing to run', async () => {
    await put('.devcontainer.json', '{"name": "nothing"}');
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('needs image, build.dockerfile or dockerComposeFile');
  });

  it('refuses a top-level lowercase dockerfile, which the CLI does not read', async () => {
    await put('.devcontainer.json', '{"dockerfile": "Dockerfile"}');
    const err = await rejection(discoverConfig(scratch.repo));
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('"build": {"dockerfile"');
  });
});
