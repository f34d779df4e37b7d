import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, computeContentKey, type ContentKey } from '../../../agent/src/cache/content-key.js';
import { discoverConfig } from '../../../agent/src/devcontainer/discover.js';
import { rejection } from '../../support/rejection.js';

const CONFIG = `{
  // The fixture's dev container.
  "name": "fixture",
  "build": {
    "dockerfile": "Dockerfile",
    "context": "..", // the repo root
  },
  "features": {
    "ghcr.io/devcontainers/features/node:1": { "version": "20" },
    "./tools-feature": {},
  },
  "remoteUser": "vscode",
}
`;

const DOCKERFILE = `FROM debian:12 AS builder
RUN echo built > /built

FROM debian:12
# the app's requirements
COPY app/requirements.txt /x
COPY --chmod=755 scripts/ /s/
COPY --from=builder /built /built
`;

let base: string;
let repo: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'warmstart-content-key-'));
  repo = path.join(base, 'repo');
  await put('.devcontainer/devcontainer.json', CONFIG);
  await put('.devcontainer/Dockerfile', DOCKERFILE);
  await put('.devcontainer/tools-feature/devcontainer-feature.json', '{"id": "tools-feature", "version": "1.0.0"}');
  await put('.devcontainer/tools-feature/install.sh', '#!/bin/sh\necho tools\n');
  await put('.dockerignore', '# build context filter\nscripts/*.tmp\n');
  await put('app/requirements.txt', 'flask==3.0.0\n');
  await put('app/main.py', 'print("hi")\n');
  await put('scripts/a.sh', 'echo a\n');
  await put('docs/guide.md', '# Guide\n');
  await put('README.md', '# Fixture\n');
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function put(rel: string, text: string): Promise<void> {
  const file = path.join(repo, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

async function contentKey(platform = 'linux/amd64'): Promise<ContentKey> {
  const discovered = await discoverConfig(repo);
  if (discovered === null) throw new Error('fixture has no config');
  return computeContentKey({ discovered, repoDir: repo, platform });
}

async function keyOf(): Promise<string> {
  return (await contentKey()).key;
}

describe('computeContentKey on the fixture', () => {
  it('is a stable sha256 and lists what went in', async () => {
    const first = await contentKey();
    expect(first.key).toMatch(/^[0-9a-f]{64}$/);
    expect((await contentKey()).key).toBe(first.key);
    expect(first.inputs).toEqual([
      'config',
      'dockerfile:.devcontainer/Dockerfile',
      'dockerignore:.dockerignore',
      'file:app/requirements.txt',
      'file:scripts/a.sh',
      'feature:./tools-feature',
      'feature-dir:.devcontainer/tools-feature',
      'feature:ghcr.io/devcontainers/features/node:1',
      'platform:linux/amd64',
    ]);
  });

  const hits: Array<[string, () => Promise<void>]> = [
    ['a comment in devcontainer.json is edited', () => put('.devcontainer/devcontainer.json', CONFIG.replace("fixture's", 'edited'))],
    [
      'the keys of devcontainer.json are reordered',
      () =>
        put(
          '.devcontainer/devcontainer.json',
          `{"remoteUser": "vscode",
            "features": {"./tools-feature": {}, "ghcr.io/devcontainers/features/node:1": {"version": "20"}},
            "build": {"context": "..", "dockerfile": "Dockerfile"}, "name": "fixture"}`,
        ),
    ],
    [
      'whitespace and trailing commas change',
      () => put('.devcontainer/devcontainer.json', CONFIG.replace(/,\n/g, '\n,').replace(/ {2}/g, '\t').replace('},\n', '}\n')),
    ],
    ['README.md (never copied) changes', () => put('README.md', '# Changed\n')],
    ['an ignored file is added under a copied directory', () => put('scripts/x.tmp', 'scratch\n')],
    ['a file under a directory that is not copied changes', () => put('docs/guide.md', '# Rewritten\n')],
    ['a file next to a copied file changes', () => put('app/main.py', 'print("bye")\n')],
  ];
  for (const [what, change] of hits) {
    it(`hits when ${what}`, async () => {
      const before = await keyOf();
      await change();
      expect(await keyOf()).toBe(before);
    });
  }

  const misses: Array<[string, () => Promise<void>]> = [
    ['the Dockerfile changes', () => put('.devcontainer/Dockerfile', `${DOCKERFILE}RUN true\n`)],
    ['app/requirements.txt changes', () => put('app/requirements.txt', 'flask==3.0.1\n')],
    ['a file under scripts/ changes', () => put('scripts/a.sh', 'echo b\n')],
    ['a file is added under scripts/', () => put('scripts/b.sh', 'echo b\n')],
    ['scripts/a.sh becomes executable', () => chmod(path.join(repo, 'scripts/a.sh'), 0o755)],
    ['a feature version changes', () => put('.devcontainer/devcontainer.json', CONFIG.replace('features/node:1', 'features/node:2'))],
    ['a feature option changes', () => put('.devcontainer/devcontainer.json', CONFIG.replace('"20"', '"22"'))],
    ["the local feature's install.sh changes", () => put('.devcontainer/tools-feature/install.sh', '#!/bin/sh\necho v2\n')],
    ['devcontainer-lock.json is added', () => put('.devcontainer/devcontainer-lock.json', '{"features": {}}\n')],
    ['remoteUser changes', () => put('.devcontainer/devcontainer.json', CONFIG.replace('"vscode"', '"root"'))],
    [
      '.dockerignore stops ignoring a file that is present',
      async () => {
        await put('scripts/x.tmp', 'scratch\n');
        await put('.dockerignore', '');
      },
    ],
  ];
  for (const [what, change] of misses) {
    it(`misses when ${what}`, async () => {
      const before = await keyOf();
      await change();
      expect(await keyOf()).not.toBe(before);
    });
  }

  it('misses when the lockfile changes, and lists it', async () => {
    await put('.devcontainer/devcontainer-lock.json', '{"features": {"a": {"version": "1.0.0"}}}\n');
    const before = await contentKey();
    expect(before.inputs).toContain('lockfile');
    await put('.devcontainer/devcontainer-lock.json', '{"features": {"a": {"version": "1.0.1"}}}\n');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('misses on another platform', async () => {
    expect((await contentKey('linux/arm64')).key).not.toBe(await keyOf());
  });

  it('reads a .devcontainer-lock.json next to a root .devcontainer.json', async () => {
    await rm(path.join(repo, '.devcontainer/devcontainer.json'));
    await put('.devcontainer.json', '{"build": {"dockerfile": ".devcontainer/Dockerfile"}}');
    const before = await contentKey();
    expect(before.inputs).not.toContain('lockfile');
    await put('.devcontainer-lock.json', '{}');
    const after = await contentKey();
    expect(after.inputs).toContain('lockfile');
    expect(after.key).not.toBe(before.key);
  });
});

describe('computeContentKey: COPY sources', () => {
  async function withDockerfile(text: string, config = '{"build": {"dockerfile": "Dockerfile", "context": ".."}}'): Promise<void> {
    await put('.devcontainer/devcontainer.json', config);
    await put('.devcontainer/Dockerfile', text);
  }

  it('expands wildcards against the context', async () => {
    await withDockerfile('FROM debian\nCOPY *.txt /d/\n');
    await put('a.txt', 'a');
    await put('b.txt', 'b');
    await put('sub/c.txt', 'nested: * does not cross /');
    const before = await contentKey();
    expect(before.inputs.filter((i) => i.startsWith('file:'))).toEqual(['file:a.txt', 'file:b.txt']);
    await put('README.md', 'unrelated');
    await put('sub/c.txt', 'changed');
    expect(await keyOf()).toBe(before.key);
    await put('d.txt', 'new match');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('reads the JSON-array form', async () => {
    await withDockerfile('FROM debian\nCOPY ["app/requirements.txt", "scripts/a.sh", "/dest/"]\n');
    const before = await contentKey();
    expect(before.inputs).toEqual(expect.arrayContaining(['file:app/requirements.txt', 'file:scripts/a.sh']));
    await put('scripts/a.sh', 'changed');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('refuses a source that escapes the build context, reading nothing outside', async () => {
    await put('../outside.txt', 'secret');
    await withDockerfile('FROM debian\nCOPY ../../etc/passwd /x\n');
    const err = await rejection(contentKey());
    expect(err.code).toBe('DEVCONTAINER_CONFIG_INVALID');
    expect(err.message).toContain('../../etc/passwd');
    await withDockerfile('FROM debian\nCOPY ../outside.txt /x\n');
    expect((await rejection(contentKey())).code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });

  it('refuses a Dockerfile or a context outside the repository', async () => {
    await withDockerfile('FROM debian\n', '{"build": {"dockerfile": "../../Dockerfile"}}');
    expect((await rejection(contentKey())).code).toBe('DEVCONTAINER_CONFIG_INVALID');
    await withDockerfile('FROM debian\n', '{"build": {"dockerfile": "Dockerfile", "context": "../.."}}');
    expect((await rejection(contentKey())).code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });

  it('refuses a copied path whose directory is a symlink out of the repo', async () => {
    await mkdir(path.join(base, 'elsewhere'));
    await put('../elsewhere/secret.txt', 'secret');
    await symlink(path.join(base, 'elsewhere'), path.join(repo, 'linked'));
    await withDockerfile('FROM debian\nCOPY linked/secret.txt /x\n');
    expect((await rejection(contentKey())).code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });

  it('hashes a symlink by its target string and never follows it out of the repo', async () => {
    await put('../elsewhere.txt', 'v1');
    await symlink(path.join(base, 'elsewhere.txt'), path.join(repo, 'scripts/out'));
    await withDockerfile('FROM debian\nCOPY scripts/ /s/\n');
    const before = await contentKey();
    expect(before.inputs).toContain('file:scripts/out (symlink)');
    await put('../elsewhere.txt', 'v2');
    expect(await keyOf()).toBe(before.key);
  });

  it('follows a named symlink to its target inside the context', async () => {
    await put('config/prod.json', '{"v": 1}');
    await symlink('config/prod.json', path.join(repo, 'settings.json'));
    await withDockerfile('FROM debian\nCOPY settings.json /etc/app.json\n');
    const before = await contentKey();
    expect(before.inputs).toEqual(expect.arrayContaining(['file:settings.json (symlink)', 'file:config/prod.json']));
    await put('config/prod.json', '{"v": 2}');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('records a missing source, and misses once it appears', async () => {
    await withDockerfile('FROM debian\nCOPY nope.txt /x\n');
    const before = await contentKey();
    expect(before.inputs).toContain('file:nope.txt (missing)');
    await put('nope.txt', 'here');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('resolves sources from ARG defaults and build args', async () => {
    await withDockerfile('ARG REQ=app/requirements.txt\nFROM debian\nARG REQ\nCOPY ${REQ} /x\n');
    expect((await contentKey()).inputs).toContain('file:app/requirements.txt');
    await withDockerfile(
      'ARG REQ=app/requirements.txt\nFROM debian\nARG REQ\nCOPY ${REQ} /x\n',
      '{"build": {"dockerfile": "Dockerfile", "context": "..", "args": {"REQ": "scripts/a.sh"}}}',
    );
    const inputs = (await contentKey()).inputs;
    expect(inputs).toContain('file:scripts/a.sh');
    expect(inputs).not.toContain('file:app/requirements.txt');
  });

  it('hashes the whole context (honouring .dockerignore) when a source is not known', async () => {
    await withDockerfile('FROM debian\nCOPY $FROM_THE_BASE_IMAGE /x\n');
    await put('scripts/x.tmp', 'ignored');
    const before = await contentKey();
    expect(before.inputs.some((i) => i.startsWith('context:. (all files:'))).toBe(true);
    expect(before.inputs).toContain('file:README.md');
    expect(before.inputs).not.toContain('file:scripts/x.tmp');
    await put('scripts/x.tmp', 'still ignored');
    expect(await keyOf()).toBe(before.key);
    await put('README.md', 'now it counts');
    expect(await keyOf()).not.toBe(before.key);
  });

  it('counts a .git directory by presence only', async () => {
    await withDockerfile('FROM debian\nCOPY . /w\n');
    await put('.git/HEAD', 'ref: refs/heads/main\n');
    const before = await contentKey();
    expect(before.inputs).toContain('file:.git (presence only)');
    await put('.git/HEAD', 'ref: refs/heads/other\n');
    expect(await keyOf()).toBe(before.key);
  });

  it('defaults the context to the Dockerfile directory and reads legacy dockerFile/context', async () => {
    await put('.devcontainer/requirements.txt', 'x');
    await withDockerfile('FROM debian\nCOPY requirements.txt /x\n', '{"build": {"dockerfile": "Dockerfile"}}');
    expect((await contentKey()).inputs).toContain('file:.devcontainer/requirements.txt');
    await withDockerfile('FROM debian\nCOPY app/requirements.txt /x\n', '{"dockerFile": "Dockerfile", "context": ".."}');
    expect((await contentKey()).inputs).toContain('file:app/requirements.txt');
  });

  it('takes the bind mounts of RUN --mount as context reads', async () => {
    await withDockerfile('FROM debian\nRUN --mount=type=bind,source=app,target=/app pip install -r /app/requirements.txt\n');
    const before = await contentKey();
    expect(before.inputs).toEqual(expect.arrayContaining(['file:app/main.py', 'file:app/requirements.txt']));
  });
});

describe('computeContentKey: refusals', () => {
  it('refuses configs that are not Dockerfile-based', async () => {
    await put('.devcontainer/devcontainer.json', '{"image": "debian"}');
    expect((await rejection(contentKey())).code).toBe('INVALID_ARGUMENT');
  });

  it('refuses an empty platform', async () => {
    expect((await rejection(contentKey(''))).code).toBe('INVALID_ARGUMENT');
  });

  it('refuses a local feature outside the repository', async () => {
    await put('.devcontainer/devcontainer.json', CONFIG.replace('./tools-feature', '../../../feature'));
    expect((await rejection(contentKey())).code).toBe('DEVCONTAINER_CONFIG_INVALID');
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and keeps array order', () => {
    expect(canonicalJson({ b: [2, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[2,{"c":2,"d":1}]}');
    expect(canonicalJson(JSON.parse('{"__proto__": 1, "x": "y"}'))).toBe('{"__proto__":1,"x":"y"}');
  });
});
