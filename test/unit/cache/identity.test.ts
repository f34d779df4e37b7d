import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hostComponent, repositoryIdentity } from '../../../agent/src/cache/identity.js';
import { exactImageLabels, labelMismatch } from '../../../agent/src/cache/image-labels.js';
import { cacheRef, cacheRepository, parseImageRef } from '../../../agent/src/cache/ref.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { parseRepository } from '../../../agent/src/workspace/repository.js';

const registry = { host: '127.0.0.1:5000', namespace: 'ns' };
const COMPONENT_RULE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

function hash8(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

function path(repository: string): string {
  return cacheRepository(registry, parseRepository(repository));
}

describe('cache path per repository identity', () => {
  it.each([
    // GitHub keeps today's path, in every spelling of the same repository
    ['acme/app', '127.0.0.1:5000/ns/acme/app'],
    ['https://github.com/Acme/App.git', '127.0.0.1:5000/ns/acme/app'],
    ['git@github.com:acme/app.git', '127.0.0.1:5000/ns/acme/app'],
    ['ssh://git@ssh.github.com:443/acme/app', '127.0.0.1:5000/ns/acme/app'],
    // other hosts are named in the path
    ['https://gitlab.example/acme/app', '127.0.0.1:5000/ns/gitlab.example/acme/app'],
    ['git@gitlab.example:acme/app.git', '127.0.0.1:5000/ns/gitlab.example/acme/app'],
    ['https://GitLab.Example/group/acme/app', '127.0.0.1:5000/ns/gitlab.example/acme/app'],
    ['https://10.0.0.7/acme/app', '127.0.0.1:5000/ns/10.0.0.7/acme/app'],
    // a port joins with '_', which no DNS name holds; the scheme's default port is no port
    ['https://gitlab.example:8443/acme/app', '127.0.0.1:5000/ns/gitlab.example_8443/acme/app'],
    ['https://gitlab.example:443/acme/app', '127.0.0.1:5000/ns/gitlab.example/acme/app'],
    ['ssh://git@gitlab.example:2222/acme/app', '127.0.0.1:5000/ns/gitlab.example_2222/acme/app'],
    ['ssh://git@gitlab.example:22/acme/app', '127.0.0.1:5000/ns/gitlab.example/acme/app'],
    // IPv6 written out in full, groups joined with '_'
    ['https://[2001:db8::1]/acme/app', '127.0.0.1:5000/ns/2001_0db8_0000_0000_0000_0000_0000_0001/acme/app'],
    ['https://[::1]:8443/acme/app', '127.0.0.1:5000/ns/0000_0000_0000_0000_0000_0000_0000_0001_8443/acme/app'],
    ['https://[::ffff:10.0.0.1]/acme/app', '127.0.0.1:5000/ns/0000_0000_0000_0000_0000_ffff_0a00_0001/acme/app'],
    // local paths: their own prefix and a hash of the absolute path
    ['/srv/acme/app', `127.0.0.1:5000/ns/local/${hash8('/srv/acme/app')}/acme/app`],
    ['file:///srv/acme/app.git', `127.0.0.1:5000/ns/local/${hash8('/srv/acme/app.git')}/acme/app`],
  ])('%s → %s', (repository, expected) => {
    const result = path(repository);
    expect(result).toBe(expected);
    for (const component of result.split('/').slice(1)) expect(component).toMatch(COMPONENT_RULE);
    expect(parseImageRef(`${result}:devcontainer-cache`).repository).toBe(result);
  });

  it('gives the same owner/name on different hosts and directories different paths', () => {
    const paths = [
      'acme/app',
      'https://gitlab.example/acme/app',
      'https://gitlab.example:8443/acme/app',
      'https://gitlab.example-8443/acme/app',
      'https://[::1]/acme/app',
      '/srv/acme/app',
      '/home/me/acme/app',
    ].map(path);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('cannot be made to equal another form by a host name: GitHub has 2 components, other hosts 3, local 4', () => {
    // a git host literally called "local"
    expect(path('https://local/acme/app').split('/').length).toBe(5);
    expect(path('/srv/acme/app').split('/').length).toBe(6);
    expect(path('acme/app').split('/').length).toBe(4);
  });

  it('keeps within 255 characters or refuses with INVALID_CACHE_REF', () => {
    const longHost = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example`;
    const fits = cacheRepository({ host: 'r.io', namespace: null }, parseRepository(`https://${longHost}/o/r`));
    expect(fits.length).toBeLessThanOrEqual(255);
    let code: string | null = null;
    try {
      cacheRepository({ host: 'r.io', namespace: 'n'.repeat(60) }, parseRepository(`https://${longHost}/o/r`));
    } catch (err) {
      expect(err).toBeInstanceOf(WarmstartError);
      code = (err as WarmstartError).code;
    }
    expect(code).toBe('INVALID_CACHE_REF');
  });

  it('shows in the moving ref', () => {
    expect(cacheRef(registry, parseRepository('https://gitlab.example/acme/app'), 'py')).toBe(
      '127.0.0.1:5000/ns/gitlab.example/acme/app:devcontainer-cache-py',
    );
  });
});

describe('repositoryIdentity', () => {
  it.each([
    ['Acme/App', 'github.com/acme/app'],
    ['git@github.com:acme/app.git', 'github.com/acme/app'],
    ['https://gitlab.example/Acme/App.git', 'gitlab.example/acme/app'],
    ['git@gitlab.example:acme/app', 'gitlab.example/acme/app'],
    ['https://gitlab.example:8443/acme/app', 'gitlab.example:8443/acme/app'],
    ['https://gitlab.example:443/acme/app', 'gitlab.example/acme/app'],
    ['https://[2001:db8::1]:8443/acme/app', '[2001:db8::1]:8443/acme/app'],
    ['/srv/Acme/App', 'local:/srv/Acme/App'],
  ])('%s → %s', (repository, expected) => {
    expect(repositoryIdentity(parseRepository(repository))).toBe(expected);
  });

  it('host components never hold a character a DNS name could', () => {
    expect(hostComponent('gitlab.example', 8443)).toBe('gitlab.example_8443');
    expect(hostComponent('[fe80::a:b]', null)).toBe('fe80_0000_0000_0000_0000_0000_000a_000b');
  });
});

describe('exact image labels', () => {
  const key = 'a'.repeat(64);
  it('match only the same identity and key', () => {
    const labels = exactImageLabels('github.com/acme/app', key);
    expect(labels).toEqual({ 'dev.warmstart.repository': 'github.com/acme/app', 'dev.warmstart.content-key': key });
    expect(labelMismatch(labels, 'github.com/acme/app', key)).toBeNull();
    expect(labelMismatch(labels, 'gitlab.example/acme/app', key)).toMatch(
      /^CACHE_IDENTITY_MISMATCH: .*dev\.warmstart\.repository="github\.com\/acme\/app"/,
    );
    expect(labelMismatch(labels, 'github.com/acme/app', 'b'.repeat(64))).toMatch(/^CACHE_IDENTITY_MISMATCH: .*content-key/);
    expect(labelMismatch({}, 'github.com/acme/app', key)).toMatch(/^CACHE_IDENTITY_MISMATCH: .*=no label/);
    expect(labelMismatch(null, 'github.com/acme/app', key)).toMatch(/^CACHE_IDENTITY_MISMATCH/);
  });
});
