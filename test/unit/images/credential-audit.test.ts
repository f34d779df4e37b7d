/**
 * The check before a golden image commit: nothing `docker commit` keeps (the
 * container's own layer, env, labels) may hold a credential. Each rule is
 * shown to refuse, and the normal workspace container (git helper via a
 * read-only bind mount and GIT_CONFIG_* env) to pass.
 */
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import type { ContainerChange, ContainerDetails } from '../../../agent/src/docker/engine.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { assertNoCredentials, auditContainer, auditWorkspaceArchive, neutralGitEnv } from '../../../agent/src/images/credential-audit.js';

const TOKEN = 'ghs_abcdefghijklmnopqrstuvwxyz0123456789';
const HELPER_ENV = ['GIT_CONFIG_COUNT=1', 'GIT_CONFIG_KEY_0=credential.helper', 'GIT_CONFIG_VALUE_0=/run/warmstart-git/git-credential-warmstart'];

function container(o: Partial<ContainerDetails> = {}): ContainerDetails {
  return {
    id: 'c0ffee0000000000',
    name: 'ws',
    state: 'running',
    running: true,
    imageId: 'sha256:abc',
    labels: { 'warmstart.workspace': 'ws1' },
    env: ['PATH=/usr/bin:/bin', ...HELPER_ENV],
    mounts: [
      { type: 'volume', source: '/var/lib/docker/volumes/warmstart-ws-ws1/_data', destination: '/workspaces/repo', rw: true },
      { type: 'bind', source: '/run/warmstart/workspaces/ws1/git', destination: '/run/warmstart-git', rw: false },
    ],
    entrypoint: null,
    cmd: null,
    ...o,
  };
}
const changes = (...paths: string[]): ContainerChange[] => paths.map((path) => ({ path, kind: 'added' }));
// What `docker diff` shows for a normal workspace: the mountpoint itself, shell history, caches.
const NORMAL = changes('/run', '/run/warmstart-git', '/root', '/root/.ash_history', '/tmp/build.log');

describe('auditContainer', () => {
  it('passes a workspace container with the git helper bind-mounted and its env pointing at it', () => {
    expect(auditContainer({ container: container(), changes: NORMAL, knownSecrets: [TOKEN] })).toEqual([]);
    expect(() => assertNoCredentials({ container: container(), changes: NORMAL, knownSecrets: [TOKEN] })).not.toThrow();
  });

  it('passes a container without any git credential', () => {
    expect(auditContainer({ container: container({ env: ['PATH=/bin'], mounts: [] }), changes: [] })).toEqual([]);
  });

  it('refuses a credential directory that is not a bind mount (a volume would be committed... or copied)', () => {
    const c = container({ mounts: [{ type: 'volume', source: 'x', destination: '/run/warmstart-git', rw: false }] });
    expect(auditContainer({ container: c, changes: [] }).join()).toMatch(/not a bind mount/);
  });

  it('refuses files under the credential directory in the container layer', () => {
    const problems = auditContainer({ container: container(), changes: changes('/run/warmstart-git/token') });
    expect(problems.join()).toMatch(/\/run\/warmstart-git\/token is in the container's own layer/);
  });

  it('ignores deleted paths', () => {
    const deleted: ContainerChange[] = [{ path: '/root/.git-credentials', kind: 'deleted' }];
    expect(auditContainer({ container: container(), changes: deleted })).toEqual([]);
  });

  it.each(['/root/.git-credentials', '/home/dev/.netrc', '/root/_netrc', '/root/.docker/config.json'])('refuses a credential file %s', (path) => {
    expect(auditContainer({ container: container(), changes: changes(path) }).join()).toContain(path);
  });

  it('refuses the helper env without its mount (the token came some other way)', () => {
    expect(auditContainer({ container: container({ mounts: [] }), changes: [] }).join()).toMatch(/nothing is mounted there/);
  });

  it.each(['GITHUB_TOKEN', 'NPM_AUTH_TOKEN', 'DB_PASSWORD', 'MYSQL_ROOT_PASSWD', 'AWS_SECRET_ACCESS_KEY', 'OPENAI_API_KEY', 'client_secret'])(
    'refuses env %s with a value',
    (name) => {
      const problems = auditContainer({ container: container({ env: [...container().env, `${name}=x`] }), changes: [] });
      expect(problems).toEqual([expect.stringContaining(`env ${name} has a value`)]);
      expect(problems.join()).not.toContain('=x');
    },
  );

  it('accepts secret-named env without a value', () => {
    expect(auditContainer({ container: container({ env: [...container().env, 'GITHUB_TOKEN=', 'PROBE_PASSWORD'] }), changes: [] })).toEqual([]);
  });

  it('refuses a known secret in any env value or label, and never echoes it', () => {
    const c = container({ env: [...container().env, `NOTE=clone with ${TOKEN}`], labels: { note: `x${TOKEN}` } });
    const problems = auditContainer({ container: c, changes: [], knownSecrets: [TOKEN, null, undefined, ''] });
    expect(problems).toEqual(['env NOTE holds a known secret', 'label note holds a known secret']);
    let err: unknown;
    try {
      assertNoCredentials({ container: c, changes: [], knownSecrets: [TOKEN] });
    } catch (e) {
      err = e;
    }
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION')).toBe(true);
    expect(JSON.stringify({ m: (err as Error).message, d: (err as { detail?: string }).detail })).not.toContain(TOKEN);
  });

  it('refuses git config from env that sends an extra HTTP header', () => {
    const env = ['GIT_CONFIG_COUNT=1', 'GIT_CONFIG_KEY_0=http.https://example.com/.extraheader', 'GIT_CONFIG_VALUE_0=Authorization: Basic eA=='];
    expect(auditContainer({ container: container({ env, mounts: [] }), changes: [] }).join()).toMatch(/extraheader/);
  });
});

describe('neutralGitEnv', () => {
  it('blanks the helper env warmstart added (the count to 0)', () => {
    expect(neutralGitEnv(['PATH=/bin', ...HELPER_ENV], ['PATH=/bin'])).toEqual(['GIT_CONFIG_COUNT=0', 'GIT_CONFIG_KEY_0=', 'GIT_CONFIG_VALUE_0=']);
  });

  it("restores the source image's own values, and leaves unchanged entries alone", () => {
    const image = ['GIT_CONFIG_COUNT=1', 'GIT_CONFIG_KEY_0=core.editor', 'GIT_CONFIG_VALUE_0=vi'];
    // COUNT=1 is the same in both: Docker keeps the container's, which is the image's.
    expect(neutralGitEnv(['PATH=/bin', ...HELPER_ENV], image)).toEqual(image.slice(1));
    expect(neutralGitEnv(image, image)).toEqual([]);
    expect(neutralGitEnv(['PATH=/bin'], [])).toEqual([]);
  });
});

/** A tar as the engine's archive of `/workspaces/repo` gives it: every name under `repo/`, file bodies in small chunks. */
function folderTar(files: Record<string, string | null>, chunk = 7): Readable {
  const p = pack();
  p.entry({ name: 'repo', type: 'directory' });
  for (const [name, body] of Object.entries(files)) {
    if (body === null) p.entry({ name: `repo/${name}`, type: 'symlink', linkname: '/elsewhere' });
    else p.entry({ name: `repo/${name}`, type: 'file' }, body);
  }
  p.finalize();
  // Re-chunked small, so a secret straddles chunk boundaries.
  const bytes: Buffer[] = [];
  return Readable.from(
    (async function* () {
      for await (const b of p as AsyncIterable<Buffer>) bytes.push(b);
      const all = Buffer.concat(bytes);
      for (let i = 0; i < all.length; i += chunk) yield all.subarray(i, i + chunk);
    })(),
  );
}

describe('auditWorkspaceArchive', () => {
  const CLEAN = {
    'README.md': '# repo\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/config':
      '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://github.com/acme/repo.git\n[credential]\n\thelper = /run/warmstart-git/git-credential-warmstart\n',
    'docs/link': null,
  };

  it('passes a cloned repository: a remote without a password and a credential helper path are not credentials', async () => {
    expect(await auditWorkspaceArchive(folderTar(CLEAN), [TOKEN, null, 'abc'])).toEqual([]);
  });

  it('finds a known secret anywhere in a file, also across the chunks it arrives in, naming the file without the folder', async () => {
    for (const chunk of [1, 5, 4096]) {
      const found = await auditWorkspaceArchive(folderTar({ ...CLEAN, 'src/app.env': `A=1\nTOKEN=${TOKEN}\n` }, chunk), [TOKEN]);
      expect(found, `chunk ${chunk}`).toEqual(['src/app.env holds a known secret']);
    }
    // Not when only part of it is there.
    expect(await auditWorkspaceArchive(folderTar({ 'a.txt': TOKEN.slice(0, -1) }, 3), [TOKEN])).toEqual([]);
  });

  it("refuses credential files by name, and git configs (the repository's, a submodule's, a worktree's) that hold a credential", async () => {
    const found = await auditWorkspaceArchive(
      folderTar({
        ...CLEAN,
        '.git-credentials': 'https://u:p@example.com\n',
        'home/.netrc': 'machine x login y password z\n',
        '.git/modules/lib/config': '[http "https://example.com/"]\n\textraHeader = AUTHORIZATION: bearer x\n',
        '.git/config.worktree': '[remote "fork"]\n\turl = https://me:secret@example.com/r.git\n',
      }),
      [],
    );
    expect(found.sort()).toEqual([
      '.git-credentials is a credential file; remove it first',
      '.git/config.worktree sets a URL with a password in it',
      '.git/modules/lib/config sets an http extraheader (a credential sent with every request)',
      'home/.netrc is a credential file; remove it first',
    ]);
    // A file that only looks like git's config outside .git is the repository's business.
    expect(await auditWorkspaceArchive(folderTar({ 'docs/config': 'extraheader = x\nhttps://a:b@c/' }), [])).toEqual([]);
  });

  it('fails on an archive that is not a tar', async () => {
    await expect(auditWorkspaceArchive(Readable.from([Buffer.alloc(1024, 7)]), [])).rejects.toThrow();
  });
});
