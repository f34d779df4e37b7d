import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DiscoveredConfig } from '../../../agent/src/devcontainer/discover.js';
import { buildOverride, OVERRIDE_FILE_NAME, writeOverrideFile, type OverrideInput } from '../../../agent/src/devcontainer/override.js';

const MOUNT = 'source=warmstart-ws-abc,target=/workspaces/app,type=volume';
const FOLDER = '/workspaces/app';

function discovered(config: Record<string, unknown>, kind: DiscoveredConfig['kind']): DiscoveredConfig {
  return {
    path: '/repo/.devcontainer/devcontainer.json',
    relativePath: '.devcontainer/devcontainer.json',
    text: JSON.stringify(config),
    config,
    kind,
  };
}

function input(d: DiscoveredConfig, extra: Partial<OverrideInput> = {}): OverrideInput {
  return { discovered: d, cacheFrom: [], workspaceMount: MOUNT, workspaceFolder: FOLDER, ...extra };
}

describe('buildOverride', () => {
  it('puts our cache refs first and keeps the repo cacheFrom string after them', () => {
    const d = discovered({ build: { dockerfile: 'Dockerfile', cacheFrom: 'ghcr.io/o/r:repo' } }, 'dockerfile');
    const r = buildOverride(input(d, { cacheFrom: ['reg/o/r:devcontainer-cache'] }));
    expect(r.config.build).toEqual({
      dockerfile: 'Dockerfile',
      cacheFrom: ['reg/o/r:devcontainer-cache', 'ghcr.io/o/r:repo'],
    });
    expect(r.cacheFromApplied).toEqual(['reg/o/r:devcontainer-cache']);
    expect(r.cacheNote).toBeNull();
  });

  it('de-duplicates an array cacheFrom, keeping the first occurrence', () => {
    const d = discovered({ build: { dockerfile: 'Dockerfile', cacheFrom: ['b', 'a', 'c', 'b'] } }, 'dockerfile');
    const r = buildOverride(input(d, { cacheFrom: ['a', 'x', 'a'] }));
    expect((r.config.build as { cacheFrom: string[] }).cacheFrom).toEqual(['a', 'x', 'b', 'c']);
    expect(r.cacheFromApplied).toEqual(['a', 'x']);
  });

  it('leaves the repo cacheFrom untouched when we have no cache image', () => {
    const d = discovered({ build: { dockerfile: 'Dockerfile', cacheFrom: 'repo:tag' } }, 'dockerfile');
    const r = buildOverride(input(d));
    expect(r.config.build).toEqual({ dockerfile: 'Dockerfile', cacheFrom: 'repo:tag' });
    expect(r.cacheFromApplied).toEqual([]);
    expect(r.cacheNote).toContain('no cache image');
  });

  it('keeps a legacy dockerFile/context config as it is and adds build.cacheFrom', () => {
    const d = discovered({ dockerFile: 'Dockerfile', context: '..' }, 'dockerfile');
    const r = buildOverride(input(d, { cacheFrom: ['c:1'] }));
    expect(r.config).toMatchObject({ dockerFile: 'Dockerfile', context: '..', build: { cacheFrom: ['c:1'] } });
    expect(r.config.build).not.toHaveProperty('dockerfile');
  });

  it('gives an image config no cacheFrom and says why', () => {
    const d = discovered({ image: 'mcr.microsoft.com/devcontainers/base' }, 'image');
    const r = buildOverride(input(d, { cacheFrom: ['c:1'] }));
    expect(r.config).not.toHaveProperty('build');
    expect(r.cacheFromApplied).toEqual([]);
    expect(r.cacheNote).toBe('image-based config: nothing is built, so there is no layer cache to use');
  });

  it('gives a compose config no cacheFrom, with a note, and still sets workspaceFolder', () => {
    const d = discovered({ dockerComposeFile: 'compose.yml', service: 'app' }, 'compose');
    const r = buildOverride(input(d, { cacheFrom: ['c:1'] }));
    expect(r.config).not.toHaveProperty('build');
    expect(r.cacheNote).toContain('compose');
    expect(r.config.workspaceFolder).toBe(FOLDER);
  });

  it('sets our workspace mount and folder over the repo ones', () => {
    const d = discovered({ image: 'x', workspaceMount: 'type=bind,source=/,target=/w', workspaceFolder: '/w' }, 'image');
    const r = buildOverride(input(d));
    expect(r.config.workspaceMount).toBe(MOUNT);
    expect(r.config.workspaceFolder).toBe(FOLDER);
  });

  it('appends our runArgs after the repo ones and leaves mounts and containerEnv alone', () => {
    const repo = {
      image: 'x',
      runArgs: ['--cap-add=SYS_PTRACE'],
      mounts: ['source=cache,target=/cache,type=volume'],
      containerEnv: { A: '${localEnv:HOME}' },
    };
    const ours = ['--mount', 'type=bind,source=/run/helper,target=/run/helper,readonly', '-e', 'GIT_CONFIG_COUNT=1'];
    const r = buildOverride(input(discovered(repo, 'image'), { runArgs: ours }));
    expect(r.config.runArgs).toEqual(['--cap-add=SYS_PTRACE', ...ours]);
    expect(r.config.mounts).toEqual(repo.mounts);
    expect(r.config.containerEnv).toEqual(repo.containerEnv);
  });

  it('keeps relative paths and everything else as the repo wrote them', () => {
    const config = {
      name: 'app',
      build: { dockerfile: '../Dockerfile', context: '..', args: { V: '${localEnv:V}' } },
      features: { './myfeat': {}, 'ghcr.io/devcontainers/features/node:1': { version: '20' } },
      postCreateCommand: 'make',
    };
    const r = buildOverride(input(discovered(config, 'dockerfile')));
    expect(r.config).toEqual({ ...config, workspaceMount: MOUNT, workspaceFolder: FOLDER });
  });

  it('does not mutate its input', () => {
    const config = {
      build: { dockerfile: 'Dockerfile', cacheFrom: ['r'] },
      mounts: ['source=a,target=/a,type=volume'],
      containerEnv: { A: '1' },
    };
    const d = discovered(config, 'dockerfile');
    const before = structuredClone(d);
    const r = buildOverride(input(d, { cacheFrom: ['c'], runArgs: ['-e', 'B=2'] }));
    expect(d).toEqual(before);
    expect(r.config.build).not.toBe(config.build);
  });
});

describe('writeOverrideFile', () => {
  it('writes devcontainer.override.json with mode 0600, also over an existing file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'warmstart-override-'));
    try {
      await writeFile(path.join(dir, OVERRIDE_FILE_NAME), 'old', { mode: 0o644 });
      const r = buildOverride(input(discovered({ image: 'x' }, 'image')));
      const file = await writeOverrideFile(dir, r.config);
      expect(file).toBe(path.join(dir, 'devcontainer.override.json'));
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(r.config);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
