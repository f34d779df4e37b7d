import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { shareTokenWith, writeContainerGitCredentials } from '../../../agent/src/git/container-credentials.js';
import { cloneArgs } from '../../../agent/src/git/git-cli.js';
import { chooseGitToken } from '../../../agent/src/workspace/git-token.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { parseRepository, repositoryAuthority } from '../../../agent/src/workspace/repository.js';

const NODE = 'node-git-token-55aa';
const JOB = 'job-git-token-66bb';
const config = configFromEnv({ WARMSTART_GIT_TOKEN: NODE, WARMSTART_GIT_TOKEN_HOSTS: 'github.com,git.example:8443' });
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('repositoryAuthority', () => {
  it('keeps the port and lowercases; null for ssh and local', () => {
    expect(repositoryAuthority(parseRepository('https://Git.Example:8443/a/b.git'))).toBe('git.example:8443');
    expect(repositoryAuthority(parseRepository('https://git.example:443/a/b'))).toBe('git.example');
    expect(repositoryAuthority(parseRepository('acme/app'))).toBe('github.com');
    expect(repositoryAuthority(parseRepository('https://[::1]:3000/o/r'))).toBe('[::1]:3000');
    expect(repositoryAuthority(parseRepository('git@github.com:a/b.git'))).toBeNull();
    expect(repositoryAuthority(parseRepository('/tmp/x/y'))).toBeNull();
  });
});

describe('which git token a job clones with', () => {
  it("uses the node's token only on its hosts, port included", () => {
    expect(chooseGitToken(parseRepository('acme/app'), null, config)).toMatchObject({ token: NODE, source: 'node', host: 'github.com' });
    expect(chooseGitToken(parseRepository('https://git.example:8443/a/b'), null, config)).toMatchObject({ token: NODE, source: 'node' });
    for (const url of [
      'https://other.host/acme/app',
      'https://git.example/a/b',
      'https://git.example:9443/a/b',
      'https://github.com.evil.example/a/b',
    ]) {
      const c = chooseGitToken(parseRepository(url), null, config);
      expect(c).toMatchObject({ token: null, source: null });
      expect(c.note).toContain('WARMSTART_GIT_TOKEN_HOSTS');
      expect(c.note).not.toContain(NODE);
    }
    expect(chooseGitToken(parseRepository('ssh://git@github.com/a/b'), null, config).token).toBeNull();
  });

  it("uses a job's own token for its own repository, wherever it is", () => {
    expect(chooseGitToken(parseRepository('https://other.host:7000/a/b'), JOB, config)).toEqual({
      token: JOB,
      source: 'job',
      host: 'other.host:7000',
      note: null,
    });
    expect(chooseGitToken(parseRepository('/tmp/a/b'), JOB, config).token).toBeNull();
  });

  it("with a GitHub App: its clone token for https repositories on the App's git hosts, before the node's; a job's own first", () => {
    const app = { ...config, githubApp: { gitHosts: ['github.com', 'ghe.example:8443'] } };
    expect(chooseGitToken(parseRepository('acme/app'), null, app)).toEqual({ token: null, source: 'github-app', host: 'github.com', note: null });
    expect(chooseGitToken(parseRepository('https://ghe.example:8443/a/b'), null, app)).toMatchObject({
      source: 'github-app',
      host: 'ghe.example:8443',
    });
    expect(chooseGitToken(parseRepository('acme/app'), JOB, app)).toMatchObject({ token: JOB, source: 'job' });
    // Not for another host (the node's token where it is bound), not over ssh, not for a local path.
    expect(chooseGitToken(parseRepository('https://git.example:8443/a/b'), null, app)).toMatchObject({ token: NODE, source: 'node' });
    expect(chooseGitToken(parseRepository('https://ghe.example/a/b'), null, app).source).not.toBe('github-app');
    expect(chooseGitToken(parseRepository('ssh://git@github.com/a/b'), null, app).source).toBeNull();
    expect(chooseGitToken(parseRepository('/tmp/a/b'), null, app).source).toBeNull();
  });

  it('is recorded in the plan', () => {
    const plan = planJob({ workspaceId: 'w1', repository: 'https://other.host/acme/app' }, config);
    expect(plan).toMatchObject({ gitToken: null, gitTokenSource: null, gitTokenHost: null });
    const own = planJob({ workspaceId: 'w1', repository: 'https://other.host/acme/app', gitToken: JOB }, config);
    expect(own).toMatchObject({ gitToken: JOB, gitTokenSource: 'job', gitTokenHost: 'other.host' });
    expect(planJob({ workspaceId: 'w1', repository: 'acme/app' }, config)).toMatchObject({ gitToken: NODE, gitTokenSource: 'node' });
  });

  it("names the repository the App's registry token is narrowed to: on the App's git hosts only, whatever the transport or token", () => {
    const app = configFromEnv({
      WARMSTART_GITHUB_APP_ID: '1',
      WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: '/nonexistent/key.pem',
      WARMSTART_GITHUB_INSTALLATION_ID: '2',
    });
    expect(app.githubApp?.registryScope).toBe('repository');
    const repoOf = (repository: string, gitToken?: string) =>
      planJob({ workspaceId: 'w1', repository, ...(gitToken ? { gitToken } : {}) }, app).githubRepository;
    expect(repoOf('acme/app')).toBe('app');
    expect(repoOf('git@github.com:acme/tool.git')).toBe('tool');
    expect(repoOf('https://github.com/acme/lib', JOB)).toBe('lib');
    expect(repoOf('https://other.host/acme/app')).toBeNull();
    expect(planJob({ workspaceId: 'w1', repository: 'acme/app' }, config).githubRepository).toBeNull(); // no App
    expect(() =>
      configFromEnv({
        WARMSTART_GITHUB_APP_ID: '1',
        WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: '/k.pem',
        WARMSTART_GITHUB_INSTALLATION_ID: '2',
        WARMSTART_GITHUB_APP_REGISTRY_SCOPE: 'org',
      }),
    ).toThrow(/repository or installation/);
  });
});

/** Asks git itself (`git credential fill`) what the helper gives for a host. */
async function fill(args: string[], env: Record<string, string>, host: string): Promise<string> {
  const r = await execa('git', [...args, 'credential', 'fill'], {
    input: `protocol=https\nhost=${host}\npath=a/b.git\n\n`,
    env: { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', HOME: '/nonexistent', ...env },
    extendEnv: true,
    reject: false,
  });
  return r.stdout;
}

describe('the credential helpers answer for their own host only', () => {
  it("the clone's helper (real git)", async () => {
    const args = cloneArgs('https://git.example:8443/a/b', '/tmp/x', {}).slice(0, 4); // the two credential.helper settings
    const env = { WARMSTART_GIT_USERNAME: 'x-access-token', WARMSTART_GIT_PASSWORD: NODE, WARMSTART_GIT_HOST: 'git.example:8443' };
    expect(await fill(args, env, 'Git.Example:8443')).toContain(`password=${NODE}`);
    for (const host of ['git.example', 'git.example:9443', 'evil.example:8443']) {
      expect(await fill(args, env, host)).not.toContain(NODE);
    }
    expect(await fill(args, { ...env, WARMSTART_GIT_HOST: '' }, 'git.example:8443')).not.toContain(NODE);
  });

  it("the container's helper, and the token file is the owner's only", async () => {
    const runtime = await mkdtemp(join(tmpdir(), 'ws-gittoken-'));
    dirs.push(runtime);
    await writeContainerGitCredentials(runtime, 'w1', JOB, 'other.host:7000');
    const dir = join(runtime, 'workspaces', 'w1', 'git');
    expect((await stat(join(dir, 'token'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'git-credential-warmstart'), 'utf8')).not.toContain(JOB);
    const run = (host: string) =>
      execa('sh', [join(dir, 'git-credential-warmstart'), 'get'], { input: `protocol=https\nhost=${host}\n`, reject: false });
    // The script reads the token at its in-container path: here only the username shows it answered.
    expect((await run('other.host:7000')).stdout).toContain('username=x-access-token');
    expect((await run('evil.example')).stdout).toBe('');
    expect((await run('other.host')).stdout).toBe('');
  });

  it('the token file goes to the remote user, or stays readable with a note when its uid cannot be found', async () => {
    const runtime = await mkdtemp(join(tmpdir(), 'ws-gittoken-'));
    dirs.push(runtime);
    await writeContainerGitCredentials(runtime, 'w2', JOB, 'other.host');
    const file = join(runtime, 'workspaces', 'w2', 'git', 'token');
    const asked: string[][] = [];
    const engine = (exitCode: number, stdout: string) => ({
      execInContainer: async (_id: string, argv: string[]) => {
        asked.push(argv);
        return { exitCode, stdout, stderr: '' };
      },
    });
    const uid = process.getuid?.() ?? 0;
    expect(await shareTokenWith(engine(0, `${uid}\n`), 'c1', runtime, 'w2', 'dev')).toBeNull();
    expect(asked).toEqual([['id', '-u', 'dev']]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(file)).uid).toBe(uid);
    const note = await shareTokenWith(engine(1, ''), 'c1', runtime, 'w2', 'ghost');
    expect(note).toContain('readable by every user');
    expect(note).toContain('id -u ghost exited 1');
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    // No user named: the uid the container runs as.
    expect(await shareTokenWith(engine(0, ''), 'c1', runtime, 'w2', undefined)).toContain('id -u exited 0 without a uid');
    expect(asked.at(-1)).toEqual(['id', '-u']);
    // A new run starts from root's only again, whatever the last one left.
    await writeContainerGitCredentials(runtime, 'w2', JOB, 'other.host');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
