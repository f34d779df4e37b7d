/**
 * Attack 3: the node's git token used to be written into every dev container
 * (/run/warmstart-git/token, mode 0644), also for repositories that did not
 * need it, where any code in the container could read it. Now only a token
 * the job brought itself is offered there, readable by the container's
 * remote user alone (0600, owned by `id -u <remoteUser>`), and its helper
 * answers only for the repository's host. Real agent, engine and git servers.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { addBareRepo, startGitHttpsServer, type GitHttpsServer } from '../support/git-https-server.js';
import { makeRepo, runId } from '../support/repos.js';
import { fakeToken } from '../support/secret-scan.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('secctr');
const NODE_TOKEN = fakeToken();
const JOB_TOKEN = fakeToken();
const ids = { node: `${run}-node`, job: `${run}-job`, light: `${run}-light`, rec: `${run}-rec`, nodeLight: `${run}-nodelight` };
const DEV_UID = '4321';

type View = { status: string; profile: string | null; containerId: string | null };

const docker = (args: string[], input?: string) => execa('docker', args, { reject: false, ...(input !== undefined ? { input } : {}) });

/** Files in the container's filesystem holding `secret` (given on stdin, so it is in no argv). */
async function filesHolding(containerId: string, secret: string): Promise<string[]> {
  const script = 'grep -rlF -f /dev/stdin $(ls -d /* | grep -v -e "^/proc$" -e "^/sys$" -e "^/dev$") 2>/dev/null; true';
  const r = await docker(['exec', '-i', containerId, 'sh', '-c', script], secret);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe("attack 3: the node's git token never enters a container; a job's own token is its remote user's only", () => {
  let home: GitHttpsServer;
  let own: GitHttpsServer;
  let agent: Agent;

  beforeAll(async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'warmstart-secctr-'));
    // A non-root remote user, so the file's owner means something.
    const source = await makeRepo(
      {
        '.devcontainer/Dockerfile': [
          'FROM @@BASE_IMAGE@@',
          'LABEL warmstart.test-run=@@RUN_ID@@',
          `RUN echo "dev:x:${DEV_UID}:${DEV_UID}::/tmp:/bin/sh" >> /etc/passwd && echo "dev:x:${DEV_UID}:" >> /etc/group`,
          '',
        ].join('\n'),
        '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile' }, remoteUser: 'dev' }),
      },
      { runId: run, baseImage: tb.baseImage },
    );
    for (const root of ['home', 'own']) await addBareRepo(source, join(scratch, root), 'acme', 'app');
    // A config that does not build: the workspace recovers into the default image.
    const broken = await makeRepo(
      {
        '.devcontainer/Dockerfile': ['FROM @@BASE_IMAGE@@', 'LABEL warmstart.test-run=@@RUN_ID@@', 'RUN exit 3', ''].join('\n'),
        '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile' } }),
      },
      { runId: run, baseImage: tb.baseImage },
    );
    await addBareRepo(broken, join(scratch, 'own'), 'acme', 'broken');
    home = await startGitHttpsServer({ projectRoot: join(scratch, 'home'), token: NODE_TOKEN });
    own = await startGitHttpsServer({ projectRoot: join(scratch, 'own'), token: JOB_TOKEN });
    const ca = join(scratch, 'ca.pem');
    await writeFile(ca, (await readFile(home.caFile, 'utf8')) + (await readFile(own.caFile, 'utf8')));
    agent = await startAgent(
      await testEnv(tb.baseImage, { WARMSTART_GIT_TOKEN: NODE_TOKEN, WARMSTART_GIT_TOKEN_HOSTS: new URL(home.url).host, GIT_SSL_CAINFO: ca }),
    );
  });

  afterAll(async () => {
    await agent?.term();
    await home?.close();
    await own?.close();
    await cleanUp({ runId: run, workspaceIds: Object.values(ids) });
  });

  async function prepare(id: string, body: Record<string, unknown>): Promise<View> {
    const r = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, ...body }),
    });
    expect(r.status, await r.clone().text()).toBe(202);
    return (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'])) as unknown as View;
  }

  it("cloned with the node's token, the container holds no credential mount and not the token's bytes", async () => {
    const view = await prepare(ids.node, { repository: `${home.url}/acme/app.git` });
    expect(view).toMatchObject({ status: 'ready', profile: 'devcontainer' });
    expect(home.requests.some((r) => r.auth === 'ok' && r.status === 200)).toBe(true); // the token really cloned
    const cid = view.containerId!;
    expect((await docker(['exec', cid, 'ls', '/run/warmstart-git'])).exitCode).not.toBe(0);
    const inspect = await docker(['inspect', cid]);
    expect(inspect.stdout).not.toContain('/run/warmstart-git');
    expect(inspect.stdout).not.toContain(NODE_TOKEN);
    const image = await docker(['image', 'inspect', JSON.parse(inspect.stdout)[0].Image as string]);
    expect(image.stdout).not.toContain(NODE_TOKEN);
    // The search works (it finds a planted copy), and finds nothing of the node's token.
    await docker(['exec', '-i', cid, 'sh', '-c', 'cat > /tmp/planted'], `x${JOB_TOKEN}x`);
    expect(await filesHolding(cid, JOB_TOKEN)).toEqual(['/tmp/planted']);
    expect(await filesHolding(cid, NODE_TOKEN)).toEqual([]);
  });

  it("a job's own token is offered to the remote user alone, for its repository's host only", async () => {
    const view = await prepare(ids.job, { repository: `${own.url}/acme/app.git`, gitToken: JOB_TOKEN });
    expect(view).toMatchObject({ status: 'ready', profile: 'devcontainer' });
    const cid = view.containerId!;
    const stat = await docker(['exec', cid, 'stat', '-c', '%a %u', '/run/warmstart-git/token']);
    expect(stat.stdout.trim()).toBe(`600 ${DEV_UID}`);
    expect((await docker(['exec', '-u', 'dev', cid, 'cat', '/run/warmstart-git/token'])).stdout).toBe(JOB_TOKEN);
    // Another non-root user in the container cannot read it.
    const other = await docker(['exec', '-u', '4242', cid, 'cat', '/run/warmstart-git/token']);
    expect(other.exitCode).not.toBe(0);
    expect(other.stdout).not.toContain(JOB_TOKEN);
    // The helper git is pointed at answers for the repository's host, and nothing for another.
    const helper = (host: string) =>
      docker(['exec', '-i', '-u', 'dev', cid, 'sh', '-c', '"$GIT_CONFIG_VALUE_0" get'], `protocol=https\nhost=${host}\n`);
    expect((await helper(new URL(own.url).host)).stdout).toContain(`password=${JOB_TOKEN}`);
    expect((await helper('evil.example')).stdout).toBe('');
    expect(await filesHolding(cid, NODE_TOKEN)).toEqual([]);
  });

  it("lightweight and recovery containers get the job's own token as the dev container does, for the image's user; the node's token never", async () => {
    const cases = [
      {
        id: ids.light,
        body: { repository: `${own.url}/acme/app.git`, gitToken: JOB_TOKEN, lightweight: true },
        status: 'ready',
        profile: 'lightweight',
      },
      { id: ids.rec, body: { repository: `${own.url}/acme/broken.git`, gitToken: JOB_TOKEN }, status: 'recovery', profile: 'recovery' },
    ];
    for (const c of cases) {
      const view = await prepare(c.id, c.body);
      expect(view, c.profile).toMatchObject({ status: c.status, profile: c.profile });
      const cid = view.containerId!;
      const uid = (await docker(['exec', cid, 'id', '-u'])).stdout.trim();
      expect(uid).toMatch(/^[0-9]+$/);
      expect((await docker(['exec', cid, 'stat', '-c', '%a %u', '/run/warmstart-git/token'])).stdout.trim(), c.profile).toBe(`600 ${uid}`);
      // Mounted read-only: code in the container cannot swap the helper git runs.
      expect((await docker(['exec', cid, 'sh', '-c', 'echo x > /run/warmstart-git/git-credential-warmstart'])).exitCode).not.toBe(0);
      const helper = (host: string) => docker(['exec', '-i', cid, 'sh', '-c', '"$GIT_CONFIG_VALUE_0" get'], `protocol=https\nhost=${host}\n`);
      expect((await helper(new URL(own.url).host)).stdout, c.profile).toContain(`password=${JOB_TOKEN}`);
      expect((await helper('evil.example')).stdout).toBe('');
      expect(await filesHolding(cid, NODE_TOKEN)).toEqual([]);
    }
    // Cloned with the node's token: the lightweight container has no credentials at all.
    const view = await prepare(ids.nodeLight, { repository: `${home.url}/acme/app.git`, lightweight: true });
    expect(view).toMatchObject({ status: 'ready', profile: 'lightweight' });
    expect((await docker(['exec', view.containerId!, 'ls', '/run/warmstart-git'])).exitCode).not.toBe(0);
    expect((await docker(['inspect', view.containerId!])).stdout).not.toContain('warmstart-git');
    expect(await filesHolding(view.containerId!, NODE_TOKEN)).toEqual([]);
  });
});
