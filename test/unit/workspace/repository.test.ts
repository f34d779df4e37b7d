import { describe, it, expect } from 'vitest';
import { WarmstartError } from '../../../agent/src/errors.js';
import { parseHostPort, parseRepository, type Repository } from '../../../agent/src/workspace/repository.js';

function refusal(input: string): WarmstartError {
  try {
    parseRepository(input, { cwd: '/work/here' });
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    return err as WarmstartError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('parseRepository: accepted forms', () => {
  const cases: Array<[string, Repository]> = [
    [
      'https://github.com/Owner/Repo.git',
      { kind: 'https', cloneUrl: 'https://github.com/Owner/Repo.git', host: 'github.com', owner: 'Owner', name: 'Repo', isGitHub: true },
    ],
    ['https://github.com/o/r/', { kind: 'https', cloneUrl: 'https://github.com/o/r/', host: 'github.com', owner: 'o', name: 'r', isGitHub: true }],
    [
      'https://gitlab.example.com:8443/group/sub/owner/repo',
      {
        kind: 'https',
        cloneUrl: 'https://gitlab.example.com:8443/group/sub/owner/repo',
        host: 'gitlab.example.com',
        owner: 'owner',
        name: 'repo',
        isGitHub: false,
      },
    ],
    [
      'HTTPS://Git.Example.com/a/b.git',
      { kind: 'https', cloneUrl: 'HTTPS://Git.Example.com/a/b.git', host: 'git.example.com', owner: 'a', name: 'b', isGitHub: false },
    ],
    [
      'https://dev.example.com/org/My%20Project/_git/repo',
      {
        kind: 'https',
        cloneUrl: 'https://dev.example.com/org/My%20Project/_git/repo',
        host: 'dev.example.com',
        owner: '_git',
        name: 'repo',
        isGitHub: false,
      },
    ],
    [
      'https://dev.example.com/org/My%20Project',
      {
        kind: 'https',
        cloneUrl: 'https://dev.example.com/org/My%20Project',
        host: 'dev.example.com',
        owner: 'org',
        name: 'My Project',
        isGitHub: false,
      },
    ],
    [
      'https://127.0.0.1:3000/o/r.git',
      { kind: 'https', cloneUrl: 'https://127.0.0.1:3000/o/r.git', host: '127.0.0.1', owner: 'o', name: 'r', isGitHub: false },
    ],
    ['https://[::1]:3000/o/r', { kind: 'https', cloneUrl: 'https://[::1]:3000/o/r', host: '[::1]', owner: 'o', name: 'r', isGitHub: false }],
    [
      'ssh://git@github.com/Foo/Bar.git',
      { kind: 'ssh', cloneUrl: 'ssh://git@github.com/Foo/Bar.git', host: 'github.com', owner: 'Foo', name: 'Bar', isGitHub: true },
    ],
    [
      'ssh://git@ssh.github.com:443/Foo/Bar.git',
      { kind: 'ssh', cloneUrl: 'ssh://git@ssh.github.com:443/Foo/Bar.git', host: 'ssh.github.com', owner: 'Foo', name: 'Bar', isGitHub: true },
    ],
    [
      'ssh://git.example.com:2222/srv/git/team/app.git',
      {
        kind: 'ssh',
        cloneUrl: 'ssh://git.example.com:2222/srv/git/team/app.git',
        host: 'git.example.com',
        owner: 'team',
        name: 'app',
        isGitHub: false,
      },
    ],
    [
      'git@github.com:Foo/Bar.git',
      { kind: 'ssh', cloneUrl: 'git@github.com:Foo/Bar.git', host: 'github.com', owner: 'Foo', name: 'Bar', isGitHub: true },
    ],
    [
      'deploy.user@git.example.com:/srv/team/app',
      { kind: 'ssh', cloneUrl: 'deploy.user@git.example.com:/srv/team/app', host: 'git.example.com', owner: 'team', name: 'app', isGitHub: false },
    ],
    ['git@[::1]:o/r.git', { kind: 'ssh', cloneUrl: 'git@[::1]:o/r.git', host: '[::1]', owner: 'o', name: 'r', isGitHub: false }],
    [
      'octo-cat/hello.world',
      {
        kind: 'github',
        cloneUrl: 'https://github.com/octo-cat/hello.world.git',
        host: 'github.com',
        owner: 'octo-cat',
        name: 'hello.world',
        isGitHub: true,
      },
    ],
    [
      'Owner/Repo.git',
      { kind: 'github', cloneUrl: 'https://github.com/Owner/Repo.git', host: 'github.com', owner: 'Owner', name: 'Repo', isGitHub: true },
    ],
    ['a/b', { kind: 'github', cloneUrl: 'https://github.com/a/b.git', host: 'github.com', owner: 'a', name: 'b', isGitHub: true }],
    ['./a/b', { kind: 'local', cloneUrl: '/work/here/a/b', host: null, owner: 'a', name: 'b', isGitHub: false }],
    ['../other/app.git', { kind: 'local', cloneUrl: '/work/other/app.git', host: null, owner: 'other', name: 'app', isGitHub: false }],
    ['/srv/git/team/app/', { kind: 'local', cloneUrl: '/srv/git/team/app', host: null, owner: 'team', name: 'app', isGitHub: false }],
    ['/repo', { kind: 'local', cloneUrl: '/repo', host: null, owner: 'local', name: 'repo', isGitHub: false }],
    ['file:///srv/git/team/app.git', { kind: 'local', cloneUrl: '/srv/git/team/app.git', host: null, owner: 'team', name: 'app', isGitHub: false }],
    ['file://localhost/srv/caf%C3%A9/app', { kind: 'local', cloneUrl: '/srv/café/app', host: null, owner: 'café', name: 'app', isGitHub: false }],
  ];

  it.each(cases)('%s', (input, expected) => {
    expect(parseRepository(input, { cwd: '/work/here' })).toEqual(expected);
  });

  it('resolves relative paths against process.cwd() by default', () => {
    expect(parseRepository('./x/y').cloneUrl).toBe(`${process.cwd()}/x/y`);
  });
});

describe('parseRepository: refused forms', () => {
  it.each([
    ['empty', ''],
    ['whitespace', 'owner/ repo'],
    ['leading space', ' owner/repo'],
    ['tab', 'https://example.com/o/r\t'],
    ['control char', 'owner/re\u0001po'],
    ['plain http', 'http://example.com/o/r'],
    ['ftp', 'ftp://example.com/o/r'],
    ['git protocol', 'git://example.com/o/r'],
    ['ext transport', 'ext::ssh-command'],
    ['fd transport', 'fd::3'],
    ['leading dash', '-uupload-pack=touch/x'],
    ['leading dash path', '--help'],
    ['query', 'https://example.com/o/r?ref=main'],
    ['fragment', 'https://example.com/o/r#main'],
    ['file query', 'file:///srv/o/r?x'],
    ['one segment https', 'https://example.com/repo'],
    ['no path https', 'https://example.com'],
    ['one segment ssh', 'ssh://git@example.com/repo'],
    ['one segment scp', 'git@example.com:repo'],
    ['dot segment', 'https://example.com/o/./r'],
    ['dot-dot segment', 'https://example.com/o/../r'],
    ['encoded dot-dot', 'https://example.com/o/%2e%2e/r'],
    ['encoded slash', 'https://example.com/o/a%2Fb'],
    ['malformed escape', 'https://example.com/o/a%zz'],
    ['empty segment', 'https://example.com/o//r'],
    ['dot-dot scp', 'git@example.com:o/../r'],
    ['bad host', 'https://exa_mple.com/o/r'],
    ['bad ipv4', 'https://999.1.1.1/o/r'],
    ['bad port', 'https://example.com:99999/o/r'],
    ['bad ipv6', 'https://[zz::1]/o/r'],
    ['three-segment bare', 'a/b/c'],
    ['one-segment bare', 'repo'],
    ['dot', '.'],
    ['github owner too long', `${'a'.repeat(40)}/r`],
    ['github owner underscore', 'a_b/r'],
    ['github owner leading dash', '-a/r'],
    ['github repo dot', 'o/.'],
    ['github repo dot-dot', 'o/..'],
    ['github repo .git only', 'o/.git'],
    ['github repo too long', `o/${'r'.repeat(101)}`],
    ['github repo bad char', 'o/r+x'],
    ['github url deeper path', 'https://github.com/o/r/tree/main'],
    ['github url bad owner', 'https://github.com/o_x/r'],
    ['scp without user', 'example.com:o/r'],
    ['scp bad user', 'us+er@example.com:o/r'],
    ['ssh password', 'ssh://git:pw@example.com/o/r'],
    ['root path', '/'],
    ['bare .git dir', '/srv/app/.git'],
    ['file root', 'file:///'],
    ['file remote host', 'file://server/srv/o/r'],
    ['file without slashes', 'file:/srv/o/r'],
    ['home path', '~/o/r'],
    ['windows path', 'C:\\src\\repo'],
  ])('refuses %s', (_label, input) => {
    expect(refusal(input).code).toBe('INVALID_REPOSITORY');
  });

  it.each([
    'https://user:tok123@github.com/o/r',
    'https://tok123@github.com/o/r',
    'https://x-access-token:tok123@github.com/o/r.git',
    'ssh://git:tok123@example.com/o/r',
  ])('refuses credentials in %s without echoing them', (input) => {
    const err = refusal(input);
    expect(err.code).toBe('INVALID_REPOSITORY');
    expect(err.message).not.toContain('tok123');
    expect(err.detail ?? '').not.toContain('tok123');
  });

  it('refuses input longer than 2048 characters, as the API does, and keeps the message short', () => {
    const long = `/${'r/'.repeat(1024)}x`;
    const err = refusal(long);
    expect(err.code).toBe('INVALID_REPOSITORY');
    expect(err.message).toMatch(/at most 2048 characters/);
    expect(err.message.length).toBeLessThan(300);
    const fits = `/${'r'.repeat(2047)}`;
    expect(parseRepository(fits).cloneUrl).toBe(fits);
  });

  it('tells the caller to pass the token separately', () => {
    expect(refusal('https://user:tok123@github.com/o/r').message).toMatch(/token separately/);
  });

  it.each(['http://user:tok123@example.com/o/r', 'https://example.com/o/r?access_token=tok123'])(
    'does not echo secrets from other refusals (%s)',
    (input) => {
      expect(refusal(input).message).not.toContain('tok123');
    },
  );
});

describe('parseHostPort', () => {
  it.each([
    ['ghcr.io', { hostname: 'ghcr.io', port: null }],
    ['localhost:5000', { hostname: 'localhost', port: 5000 }],
    ['127.0.0.1:5000', { hostname: '127.0.0.1', port: 5000 }],
    ['[::1]:5000', { hostname: '[::1]', port: 5000 }],
    ['[2001:db8::1]', { hostname: '[2001:db8::1]', port: null }],
  ])('accepts %s', (input, expected) => {
    expect(parseHostPort(input)).toEqual(expected);
  });

  it.each(['', 'a..b', '-a.com', 'a.com:', 'a.com:0', 'a.com:65536', 'a:b:c', '::1', '[::1', '[::1]x', '1.2.3'])('refuses %j', (input) => {
    expect(parseHostPort(input)).toBeNull();
  });
});
