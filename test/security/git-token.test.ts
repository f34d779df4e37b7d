/**
 * Attack 2: a job for a repository on another git host collects the node's
 * git token (WARMSTART_GIT_TOKEN), which git's credential helper used to
 * hand to any host that asked. Two real git servers over HTTPS: the node's
 * own host (in WARMSTART_GIT_TOKEN_HOSTS) and an attacker's, which asks for
 * Basic auth and would accept the node's token (so a leak shows as `ok`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { addBareRepo, startGitHttpsServer, type GitHttpsServer } from '../support/git-https-server.js';
import { makeRepo, runId } from '../support/repos.js';
import { fakeToken } from '../support/secret-scan.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('secgit');
const NODE_TOKEN = fakeToken();
const ids = { evil: `${run}-evil`, home: `${run}-home` };

type View = { status: string; profile: string | null; error: { code: string } | null };

describe("attack 2: a repository on another host never gets the node's git token", () => {
  let home: GitHttpsServer;
  let evil: GitHttpsServer;
  let agent: Agent;

  beforeAll(async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'warmstart-secgit-'));
    const source = await makeRepo('small', { runId: run, baseImage: tb.baseImage });
    for (const root of ['home', 'evil']) await addBareRepo(source, join(scratch, root), 'acme', 'app');
    home = await startGitHttpsServer({ projectRoot: join(scratch, 'home'), token: NODE_TOKEN });
    evil = await startGitHttpsServer({ projectRoot: join(scratch, 'evil'), token: NODE_TOKEN });
    const ca = join(scratch, 'ca.pem');
    await writeFile(ca, (await readFile(home.caFile, 'utf8')) + (await readFile(evil.caFile, 'utf8')));
    agent = await startAgent(
      await testEnv(tb.baseImage, {
        WARMSTART_GIT_TOKEN: NODE_TOKEN,
        WARMSTART_GIT_TOKEN_HOSTS: new URL(home.url).host,
        GIT_SSL_CAINFO: ca,
      }),
    );
  });

  afterAll(async () => {
    await agent?.term();
    await home?.close();
    await evil?.close();
    await cleanUp({ runId: run, workspaceIds: Object.values(ids) });
  });

  async function prepare(id: string, repository: string): Promise<View> {
    const r = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, repository, lightweight: true }),
    });
    expect(r.status, await r.clone().text()).toBe(202);
    return (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'])) as unknown as View;
  }

  it('the other host is asked for nothing but anonymous requests, and the clone fails', async () => {
    const view = await prepare(ids.evil, `${evil.url}/acme/app.git`);
    expect(view.status).toBe('failed');
    expect(view.error?.code).toBe('GIT_CLONE_FAILED');
    // git did reach the other host and was challenged for credentials...
    expect(evil.requests.length).toBeGreaterThan(0);
    expect(evil.requests.some((r) => r.status === 401)).toBe(true);
    // ...and had none to give it.
    expect(evil.requests.filter((r) => r.auth !== 'none')).toEqual([]);
    console.log(`[attack 2] other host: ${evil.requests.length} requests, auth ${[...new Set(evil.requests.map((r) => r.auth))].join('/')}`);
  });

  it("the node's own host still clones with the token", async () => {
    const view = await prepare(ids.home, `${home.url}/acme/app.git`);
    expect(view).toMatchObject({ status: 'ready', profile: 'lightweight' });
    expect(home.requests.some((r) => r.auth === 'ok' && r.status === 200)).toBe(true);
  });

  it('the token is in no state file, the events say why it was held back', async () => {
    const state = agent.env.WARMSTART_STATE_DIR!;
    const grep = await promisify(execFile)('grep', ['-rlF', NODE_TOKEN, state]).catch((e: { code?: number; stdout?: string }) => e);
    expect((grep as { code?: number }).code).toBe(1); // grep: no match
    const events = await readFile(join(state, 'workspaces', ids.evil, 'events.ndjson'), 'utf8');
    expect(events).toContain('not in WARMSTART_GIT_TOKEN_HOSTS');
  });
});
