import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { WarmstartError } from '../../../agent/src/errors.js';
import { builderRef, cacheRef, cacheRepository, cacheTag, parseCacheRegistry, parseImageRef, resolveCacheRef } from '../../../agent/src/cache/ref.js';
import { parseRepository, type Repository } from '../../../agent/src/workspace/repository.js';

const TAG_RULE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const COMPONENT_RULE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    return (err as WarmstartError).code;
  }
  return undefined;
}

function hash8(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** A GitHub repository with any owner and name, to test how names become path components (paths per host: identity.test.ts). */
function repo(owner: string, name: string): Repository {
  return { kind: 'https', cloneUrl: `https://github.com/${owner}/${name}`, host: 'github.com', owner, name, isGitHub: true };
}

describe('parseCacheRegistry', () => {
  it.each([
    ['ghcr.io', { host: 'ghcr.io', namespace: null }],
    ['ghcr.io/', { host: 'ghcr.io', namespace: null }],
    ['GHCR.io/Octo-Org', { host: 'ghcr.io', namespace: 'octo-org' }],
    ['127.0.0.1:5000', { host: '127.0.0.1:5000', namespace: null }],
    ['localhost:5000/a/b.c/d_e/f__g/h--i', { host: 'localhost:5000', namespace: 'a/b.c/d_e/f__g/h--i' }],
    ['[::1]:5000/ns', { host: '[::1]:5000', namespace: 'ns' }],
    ['registry.example.com/Team/Cache', { host: 'registry.example.com', namespace: 'team/cache' }],
  ])('accepts %s', (input, expected) => {
    expect(parseCacheRegistry(input)).toEqual(expected);
  });

  it.each([
    ['empty', ''],
    ['space', 'ghcr.io/ ns'],
    ['https scheme', 'https://ghcr.io/ns'],
    ['http scheme', 'http://localhost:5000'],
    ['bad host', 'exa_mple.com'],
    ['bad port', 'localhost:0'],
    ['empty host', '/ns'],
    ['empty component', 'ghcr.io/a//b'],
    ['leading separator', 'ghcr.io/-ns'],
    ['trailing separator', 'ghcr.io/ns_'],
    ['triple underscore', 'ghcr.io/a___b'],
    ['mixed separators', 'ghcr.io/a._b'],
    ['bad char', 'ghcr.io/a+b'],
    ['tag-like colon', 'ghcr.io/ns:tag'],
  ])('refuses %s', (_label, input) => {
    expect(codeOf(() => parseCacheRegistry(input))).toBe('INVALID_REGISTRY');
  });

  it('says to drop the scheme', () => {
    expect(() => parseCacheRegistry('https://ghcr.io')).toThrow(/drop the scheme/);
  });
});

describe('cacheTag', () => {
  it.each([
    [undefined, 'devcontainer-cache'],
    [null, 'devcontainer-cache'],
    ['', 'devcontainer-cache'],
    ['python', 'devcontainer-cache-python'],
    ['python 3.12', 'devcontainer-cache-python-3.12'],
    ['--x--', 'devcontainer-cache-x'],
    ['.x.', 'devcontainer-cache-x'],
    ['a  /  b', 'devcontainer-cache-a-b'],
    ['Node_20.x', 'devcontainer-cache-Node_20.x'],
    ['café', 'devcontainer-cache-caf'],
    ['日本', `devcontainer-cache-${hash8('日本')}`],
    ['---', `devcontainer-cache-${hash8('---')}`],
  ])('%j → %s', (name, expected) => {
    expect(cacheTag(name)).toBe(expected);
  });

  it('gives names with nothing readable distinct tags, none the default', () => {
    expect(cacheTag('日本')).not.toBe(cacheTag('中文'));
    expect(cacheTag('日本')).not.toBe('devcontainer-cache');
  });

  it('shares a tag between names that sanitize alike (documented)', () => {
    expect(cacheTag('a b')).toBe(cacheTag('a-b'));
  });

  it('keeps a name that just fits uncut', () => {
    const name = 'n'.repeat(128 - 'devcontainer-cache-'.length);
    expect(cacheTag(name)).toBe(`devcontainer-cache-${name}`);
    expect(cacheTag(name)).toHaveLength(128);
  });

  it('cuts long names with a hash of the original name', () => {
    const prefix = 'p'.repeat(200);
    const a = `${prefix}${'a'.repeat(100)}`;
    const b = `${prefix}${'b'.repeat(100)}`;
    expect(a).toHaveLength(300);
    expect(cacheTag(a)).toMatch(TAG_RULE);
    expect(cacheTag(b)).toMatch(TAG_RULE);
    expect(cacheTag(a)).toHaveLength(128);
    expect(cacheTag(a)).not.toBe(cacheTag(b));
    expect(cacheTag(a).endsWith(`-${hash8(a)}`)).toBe(true);
    expect(cacheTag(a)).toBe(cacheTag(a));
  });

  it('never leaves a separator before the hash suffix', () => {
    const name = `${'x'.repeat(100)}${'-y'.repeat(100)}`;
    expect(cacheTag(name)).toMatch(TAG_RULE);
    expect(cacheTag(name)).not.toMatch(/[-.]-[0-9a-f]{8}$/);
  });

  it.each(['python 3.12', '..', '\u0000', 'a'.repeat(1000), '-._-', 'Ünïcödé name'])('always fits the OCI tag rule (%j)', (name) => {
    expect(cacheTag(name)).toMatch(TAG_RULE);
  });
});

describe('cacheRepository and cacheRef', () => {
  const ghcr = { host: 'ghcr.io', namespace: null };

  it('lowercases owner and name', () => {
    expect(cacheRef(ghcr, parseRepository('Owner/Repo'))).toBe('ghcr.io/owner/repo:devcontainer-cache');
  });

  it('keeps the port, lowercases the host and adds the namespace', () => {
    expect(cacheRef({ host: 'Registry.Local:5000', namespace: 'team/cache' }, repo('o', 'r'), 'python 3.12')).toBe(
      'registry.local:5000/team/cache/o/r:devcontainer-cache-python-3.12',
    );
  });

  it.each([
    ['Owner', 'Repo', 'ghcr.io/owner/repo'],
    ['o', 'hello.world', 'ghcr.io/o/hello.world'],
    ['o', 'my_repo', 'ghcr.io/o/my_repo'],
    ['o', 'my__repo', 'ghcr.io/o/my__repo'],
    ['o', 'my___repo', 'ghcr.io/o/my-repo'],
    ['o', 'a--b', 'ghcr.io/o/a--b'],
    ['o', 'a - b', 'ghcr.io/o/a---b'],
    ['o', 'a._b', 'ghcr.io/o/a-b'],
    ['o', 'a..b', 'ghcr.io/o/a-b'],
    ['o', '.hidden', 'ghcr.io/o/hidden'],
    ['o', '_x_', 'ghcr.io/o/x'],
    ['My Team', 'App (v2)', 'ghcr.io/my-team/app-v2'],
    ['café', 'naïve', 'ghcr.io/caf/na-ve'],
  ])('%s/%s → %s', (owner, name, expected) => {
    const result = cacheRepository(ghcr, repo(owner, name));
    expect(result).toBe(expected);
    for (const component of result.split('/').slice(1)) expect(component).toMatch(COMPONENT_RULE);
  });

  it('gives a component with nothing usable a stable hash', () => {
    const result = cacheRepository(ghcr, repo('___', '日本'));
    expect(result).toBe(`ghcr.io/${hash8('___')}/${hash8('日本')}`);
  });

  it('refuses a repository longer than 255 characters', () => {
    const longNs = { host: 'ghcr.io', namespace: 'n'.repeat(250) };
    expect(codeOf(() => cacheRepository(longNs, repo('o', 'r')))).toBe('INVALID_CACHE_REF');
  });

  it('produces refs that parseImageRef accepts', () => {
    const ref = cacheRef({ host: 'localhost:5000', namespace: 'ns' }, repo('Weird..Owner', 'Re po'), 'x y');
    expect(parseImageRef(ref)).toMatchObject({ registryHost: 'localhost:5000', path: 'ns/weird-owner/re-po', tag: 'devcontainer-cache-x-y' });
  });
});

describe('parseImageRef', () => {
  const digest = `sha256:${'a'.repeat(64)}`;

  it.each([
    ['127.0.0.1:5000/a/b:tag', { repository: '127.0.0.1:5000/a/b', registryHost: '127.0.0.1:5000', path: 'a/b', tag: 'tag', digest: null }],
    [`ghcr.io/o/r@${digest}`, { repository: 'ghcr.io/o/r', registryHost: 'ghcr.io', path: 'o/r', tag: null, digest }],
    [`ghcr.io/o/r:v1@${digest}`, { repository: 'ghcr.io/o/r', registryHost: 'ghcr.io', path: 'o/r', tag: 'v1', digest }],
    ['localhost/r', { repository: 'localhost/r', registryHost: 'localhost', path: 'r', tag: null, digest: null }],
    [
      'localhost:5000/r:Latest_1.0-x',
      { repository: 'localhost:5000/r', registryHost: 'localhost:5000', path: 'r', tag: 'Latest_1.0-x', digest: null },
    ],
    ['[::1]:5000/a/b:t', { repository: '[::1]:5000/a/b', registryHost: '[::1]:5000', path: 'a/b', tag: 't', digest: null }],
    [
      'registry.example.com/a__b/c--d/e.f',
      { repository: 'registry.example.com/a__b/c--d/e.f', registryHost: 'registry.example.com', path: 'a__b/c--d/e.f', tag: null, digest: null },
    ],
  ])('parses %s', (input, expected) => {
    expect(parseImageRef(input)).toEqual(expected);
  });

  it.each([
    ['empty', ''],
    ['no registry host', 'owner/repo:tag'],
    ['single component', 'ubuntu'],
    ['single component with tag', 'ubuntu:22.04'],
    ['host only', 'localhost:5000'],
    ['uppercase path', 'ghcr.io/Owner/repo'],
    ['empty path', 'ghcr.io/'],
    ['empty component', 'ghcr.io/a//b'],
    ['bad separator', 'ghcr.io/a___b'],
    ['leading separator', 'ghcr.io/-a'],
    ['empty tag', 'ghcr.io/a:'],
    ['tag leading dot', 'ghcr.io/a:.x'],
    ['tag leading dash', 'ghcr.io/a:-x'],
    ['tag too long', `ghcr.io/a:${'t'.repeat(129)}`],
    ['tag bad char', 'ghcr.io/a:t+x'],
    ['short digest', 'ghcr.io/a@sha256:abc'],
    ['uppercase digest', `ghcr.io/a@sha256:${'A'.repeat(64)}`],
    ['empty digest', 'ghcr.io/a@'],
    ['two @', `ghcr.io/a@${digest}@x`],
    ['scheme', 'https://ghcr.io/a/b'],
    ['whitespace', 'ghcr.io/a b'],
    ['bad host', 'exa_mple.com/a'],
    ['bad port', 'localhost:99999/a'],
    ['too long', `ghcr.io/${'a'.repeat(250)}`],
  ])('refuses %s', (_label, input) => {
    expect(codeOf(() => parseImageRef(input))).toBe('INVALID_CACHE_REF');
  });
});

describe('resolveCacheRef', () => {
  const r = repo('Owner', 'Repo');

  it('prefers an explicit ref with a tag as given', () => {
    expect(resolveCacheRef({ cacheRef: 'localhost:5000/x/y:mine', registry: { host: 'ghcr.io', namespace: null }, repo: r, configName: 'py' })).toBe(
      'localhost:5000/x/y:mine',
    );
  });

  it('gives an explicit ref without a tag the config tag', () => {
    expect(resolveCacheRef({ cacheRef: 'localhost:5000/x/y', repo: r, configName: 'py' })).toBe('localhost:5000/x/y:devcontainer-cache-py');
    expect(resolveCacheRef({ cacheRef: 'localhost:5000/x/y', repo: r })).toBe('localhost:5000/x/y:devcontainer-cache');
  });

  it('refuses an explicit ref that is invalid or a digest', () => {
    expect(codeOf(() => resolveCacheRef({ cacheRef: 'x/y', repo: r }))).toBe('INVALID_CACHE_REF');
    expect(codeOf(() => resolveCacheRef({ cacheRef: `ghcr.io/x@sha256:${'a'.repeat(64)}`, repo: r }))).toBe('INVALID_CACHE_REF');
  });

  it('derives the ref from the registry otherwise', () => {
    expect(resolveCacheRef({ registry: { host: 'ghcr.io', namespace: 'org' }, repo: r, configName: 'python 3.12' })).toBe(
      'ghcr.io/org/owner/repo:devcontainer-cache-python-3.12',
    );
  });

  it('returns null without a ref or registry', () => {
    expect(resolveCacheRef({ repo: r })).toBeNull();
    expect(resolveCacheRef({ registry: null, repo: r, configName: 'x' })).toBeNull();
  });
});

describe('builderRef', () => {
  const moving = 'ghcr.io/acme/app:devcontainer-cache';
  it("keeps the classic tag and prefixes BuildKit's", () => {
    expect(builderRef(moving, 'classic')).toBe(moving);
    expect(builderRef(moving, 'buildkit')).toBe('ghcr.io/acme/app:buildkit-devcontainer-cache');
    expect(builderRef('localhost:5000/a/b:devcontainer-cache-py', 'buildkit')).toBe('localhost:5000/a/b:buildkit-devcontainer-cache-py');
  });
  it("never gives one config's BuildKit tag to another config, and stays a valid tag when long", () => {
    // A config named "buildkit" under the classic builder is not the default config under BuildKit.
    const named = `ghcr.io/acme/app:${cacheTag('buildkit')}`;
    expect(builderRef(moving, 'buildkit')).not.toBe(named);
    const long = `ghcr.io/acme/app:${cacheTag('x'.repeat(200))}`;
    const a = builderRef(long, 'buildkit');
    const b = builderRef(`ghcr.io/acme/app:${cacheTag(`${'x'.repeat(199)}y`)}`, 'buildkit');
    const tag = a.slice(a.lastIndexOf(':') + 1);
    expect(tag.length).toBeLessThanOrEqual(128);
    expect(tag.startsWith('buildkit-devcontainer-cache-')).toBe(true);
    expect(() => parseImageRef(a)).not.toThrow();
    expect(a).not.toBe(b);
  });
});
