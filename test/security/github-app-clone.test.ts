/**
 * A GitHub App clones GitHub repositories when a job brings no token: the
 * agent asks GitHub which installation covers the repository, then for an
 * installation token for that one repository with `contents: read`, kept in
 * memory only; a repository outside the installation gets no token at all.
 * The App's API is a stand-in that refuses what GitHub refuses (JWT,
 * installation, permissions, repositories); the git server is real (git
 * http-backend over HTTPS) and accepts a token only for the repository it
 * was issued for. Real agent, engine and git.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { addBareRepo, startGitHttpsServer, type GitHttpsServer } from '../support/git-https-server.js';
import { startGithubApiStandIn, type GithubApiStandIn } from '../support/github-api-standin.js';
import { makeRepo, runId } from '../support/repos.js';
import { needlesFor, placesFromTree, scan } from '../support/secret-scan.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('secapp');
const ids = { ok: `${run}-ok`, refused: `${run}-refused`, foreign: `${run}-foreign` };
const APP_ID = '31337';
const INSTALLATION = '4242';

type View = { status: string; profile: string | null; containerId: string | null; error: { code: string } | null };

describe('a GitHub App clones the repository it is installed on, with a token for that repository only', () => {
  let scratch: string;
  let git: GitHttpsServer;
  let granting: GithubApiStandIn;
  let stingy: GithubApiStandIn;
  let agent: Agent;
  let stingyAgent: Agent;
  let env: Record<string, string>;
  const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'warmstart-secapp-'));
    const source = await makeRepo('small', { runId: run, baseImage: tb.baseImage });
    for (const name of ['app', 'other']) await addBareRepo(source, join(scratch, 'git'), 'acme', name);
    // Another account's repository of the same name: the App is not installed there.
    await addBareRepo(source, join(scratch, 'git'), 'evil', 'app');
    granting = await startGithubApiStandIn({
      appId: APP_ID,
      key: pem,
      installationId: INSTALLATION,
      account: 'acme',
      granted: { contents: 'read', packages: 'write' },
      repositories: ['app', 'other'],
    });
    // Installed without contents: its clone token is refused (422), and so is the registry token's packages: write.
    stingy = await startGithubApiStandIn({
      appId: APP_ID,
      key: pem,
      installationId: INSTALLATION,
      account: 'acme',
      granted: { metadata: 'read' },
      repositories: ['app'],
    });
    // A token opens only the repository it was issued for.
    const repoOf = (path: string): string => /^\/acme\/([^/]+)\.git\//.exec(path)?.[1] ?? '';
    git = await startGitHttpsServer({
      projectRoot: join(scratch, 'git'),
      token: (given, path) => granting.allows(given, repoOf(path)) || stingy.allows(given, repoOf(path)),
    });
    const keyFile = join(scratch, 'app.pem');
    await writeFile(keyFile, pem, { mode: 0o600 });
    const appEnv = (api: GithubApiStandIn): Record<string, string> => ({
      WARMSTART_GITHUB_APP_ID: APP_ID,
      WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: keyFile,
      WARMSTART_GITHUB_INSTALLATION_ID: INSTALLATION,
      WARMSTART_GITHUB_API_URL: api.url,
      WARMSTART_GITHUB_APP_GIT_HOSTS: new URL(git.url).host,
      // The cache stays on the testbed's registry: these workspaces never reach ghcr.io.
      WARMSTART_CACHE_REGISTRY: `${tb.registry}/warmstart-test/${run}`,
      GIT_SSL_CAINFO: git.caFile,
    });
    env = await testEnv(tb.baseImage, appEnv(granting));
    agent = await startAgent(env);
    stingyAgent = await startAgent(await testEnv(tb.baseImage, appEnv(stingy)));
  });

  afterAll(async () => {
    await agent?.term();
    await stingyAgent?.term();
    await git?.close();
    await granting?.close();
    await stingy?.close();
    await cleanUp({ runId: run, workspaceIds: Object.values(ids) });
  });

  async function prepare(a: Agent, id: string, repository: string): Promise<View> {
    const r = await a.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, repository, lightweight: true }),
    });
    expect(r.status, await r.clone().text()).toBe(202);
    return (await waitForStatus(a, id, ['ready', 'recovery', 'failed'])) as unknown as View;
  }

  it('looks the repository up, asks for contents: read on it alone, clones with it, and the token is nowhere afterwards', async () => {
    const view = await prepare(agent, ids.ok, `${git.url}/acme/app.git`);
    expect(view, JSON.stringify(view.error)).toMatchObject({ status: 'ready', profile: 'lightweight' });
    expect(granting.requests.filter((r) => r.route === 'get-repo-installation')).toEqual([
      { route: 'get-repo-installation', repository: 'acme/app', status: 200, body: {} },
    ]);
    const cloneAsks = granting.requests.filter((r) => (r.body.permissions as Record<string, string> | undefined)?.contents);
    expect(cloneAsks).toEqual([
      { route: 'create-token', installationId: INSTALLATION, status: 201, body: { repositories: ['app'], permissions: { contents: 'read' } } },
    ]);
    const token = granting.issued.find((t) => t.repositories?.includes('app'))!.token;
    // It opened that repository, and would not open another one of the same installation.
    expect(git.requests.some((r) => r.path.startsWith('/acme/app.git/') && r.auth === 'ok' && r.status === 200)).toBe(true);
    expect(granting.allows(token, 'other')).toBe(false);
    // The daemon's start-up check asked for the registry token with packages: write only.
    expect(granting.requests.some((r) => JSON.stringify(r.body) === JSON.stringify({ permissions: { packages: 'write' } }) && r.status === 201)).toBe(
      true,
    );

    const events = await (await agent.request(`/v1/workspaces/${ids.ok}/events`)).text();
    expect(events).toContain("cloning with the GitHub App's token for this repository");
    // Not in the container (only a job's own token goes there), the clone's .git/config, the agent's files or output.
    expect((await execa('docker', ['exec', view.containerId!, 'ls', '/run/warmstart-git'], { reject: false })).exitCode).not.toBe(0);
    const gitConfig = await execa('docker', ['exec', view.containerId!, 'sh', '-c', 'cat /workspaces/*/.git/config'], { reject: false });
    expect(gitConfig.stdout).toContain('[remote "origin"]');
    const places = [
      { name: 'agent output', bytes: Buffer.from(agent.output()) },
      { name: 'events', bytes: Buffer.from(events) },
      { name: 'container .git/config', bytes: Buffer.from(gitConfig.stdout) },
      ...(await placesFromTree(env.WARMSTART_STATE_DIR!, 'state:', scratch)),
      ...(await placesFromTree(env.WARMSTART_RUNTIME_DIR!, 'runtime:', scratch)),
    ];
    expect(places.length).toBeGreaterThan(4);
    expect(scan(places, needlesFor('app clone token', token, 'x-access-token'))).toEqual([]);
    expect(scan(places, needlesFor('app key', pem.split('\n').slice(1, 3).join('')))).toEqual([]);
  });

  it('an installation that does not grant contents: the clone goes on without a token, fails, and the events and the log say what to grant', async () => {
    const view = await prepare(stingyAgent, ids.refused, `${git.url}/acme/app.git`);
    expect(view.status).toBe('failed');
    expect(view.error?.code).toBe('GIT_CLONE_FAILED');
    expect(stingy.requests.filter((r) => r.route === 'create-token' && r.status === 422).length).toBeGreaterThanOrEqual(2);
    expect(stingy.issued).toEqual([]);
    const events = await (await stingyAgent.request(`/v1/workspaces/${ids.refused}/events`)).text();
    expect(events).toContain(
      `no GitHub App token for acme/app, cloning without one: GITHUB_APP_AUTH_FAILED: GitHub App installation ${INSTALLATION} does not grant contents: read on acme/app`,
    );
    // At start-up the daemon logged that its registry token is refused too, as an error naming what to grant.
    const log = stingyAgent.output();
    const line = log.split('\n').find((l) => l.includes('GitHub App cannot get its ghcr.io token'));
    expect(line, log.slice(-2000)).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ level: 50 });
    expect(line).toContain('does not grant packages: write');
    expect(line).toContain('The permissions requested are not granted to this installation.');
  });

  it('a repository of an account the App is not installed on gets no token: GitHub is asked which installation covers it, and nothing more', async () => {
    const before = granting.issued.length;
    const view = await prepare(agent, ids.foreign, `${git.url}/evil/app.git`);
    expect(view.status).toBe('failed');
    expect(view.error?.code).toBe('GIT_CLONE_FAILED');
    expect(granting.requests.filter((r) => r.repository === 'evil/app')).toEqual([
      { route: 'get-repo-installation', repository: 'evil/app', status: 404, body: {} },
    ]);
    // No token was minted for it (not even one for acme/app, whose name it shares), and git saw no token for evil/app.
    expect(granting.issued.length).toBe(before);
    const evilGit = git.requests.filter((r) => r.path.startsWith('/evil/app.git/'));
    expect(evilGit.length).toBeGreaterThan(0);
    expect(evilGit.every((r) => r.auth === 'none')).toBe(true);
    const events = await (await agent.request(`/v1/workspaces/${ids.foreign}/events`)).text();
    expect(events).toContain(
      'no GitHub App token for evil/app, cloning without one: GITHUB_APP_AUTH_FAILED: the GitHub App is not installed on evil/app',
    );
  });
});
