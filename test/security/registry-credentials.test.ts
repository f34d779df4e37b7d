/**
 * Attack 1: a job names its own registry (`cache.registry`) to collect the
 * node's static registry credentials. A real `warmstart serve` holds static
 * credentials for the testbed's password-protected registry; a stand-in
 * registry on loopback asks for Basic auth on every request and records
 * everything. The job still ends ready, and the stand-in never sees the
 * password; a job on the configured registry still pulls and pushes with it.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { startStandin, type Standin } from '../support/standin.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('seccred');
const namespace = `warmstart-test/${run}`;
const ids = { evil: `${run}-evil`, own: `${run}-own`, legit: `${run}-legit` };
const JOB_PASSWORD = `job-own-${run}`;

type View = {
  status: string;
  cache: { ref: string | null; hit: string; reason: string | null };
  push: { status: string; reason: string | null; ref: string | null };
};

/** An attacker's registry: 401 with a Basic challenge to anything without Authorization. */
function challengeAll(_req: unknown, res: ServerResponse): void {
  res
    .writeHead(401, {
      'www-authenticate': 'Basic realm="evil"',
      'content-type': 'application/json',
      'docker-distribution-api-version': 'registry/2.0',
    })
    .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
}

describe("attack 1: a job naming its own registry gets none of the node's registry credentials", () => {
  let agent: Agent;
  let evil: Standin;
  let repo: string;
  const refs: string[] = [];

  beforeAll(async () => {
    repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `cred-${run}` });
    evil = await startStandin(challengeAll);
    agent = await startAgent(
      await testEnv(tb.baseImage, {
        WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}`,
        WARMSTART_REGISTRY_USERNAME: tb.registryUser,
        WARMSTART_REGISTRY_PASSWORD: tb.registryPassword,
      }),
    );
  });

  afterAll(async () => {
    await agent?.term();
    await evil?.close();
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs });
  });

  async function prepare(id: string, cache?: Record<string, string>): Promise<View> {
    const r = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, repository: repo, ...(cache ? { cache } : {}) }),
    });
    expect(r.status, await r.clone().text()).toBe(202);
    await waitForStatus(agent, id, ['ready', 'recovery', 'failed']);
    for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
      const view = (await (await agent.request(`/v1/workspaces/${id}`)).json()) as View;
      if (view.push.status !== 'pending') return view;
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`push of ${id} did not settle`);
  }

  it('the stand-in registry sees no request holding the password; the workspace is ready, pull only', async () => {
    const view = await prepare(ids.evil, { registry: `${evil.host}/loot` });
    expect(view.status).toBe('ready');
    expect(view.cache.hit).toBe('miss');
    expect(view.push).toMatchObject({ status: 'skipped', reason: 'no registry credentials: pull only' });
    // The stand-in was really asked (pull and lookups), with a challenge it could not get answered.
    expect(evil.requests.length).toBeGreaterThan(0);
    expect(evil.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
    expect(evil.saw(tb.registryPassword)).toBe(false);
    console.log(
      `[attack 1] stand-in registry: ${evil.requests.length} requests, ${evil.requests.filter((r) => r.headers.authorization).length} with Authorization, password seen: ${evil.saw(tb.registryPassword)}`,
    );
  });

  it("a job that brings its own credentials for that registry sends those, and still not the node's", async () => {
    const before = evil.requests.length;
    const view = await prepare(ids.own, { registry: `${evil.host}/loot`, username: 'intruder', password: JOB_PASSWORD });
    expect(view.status).toBe('ready');
    // So the stand-in does receive credentials when a job has some: the node's are missing by design.
    expect(evil.requests.slice(before).some((r) => r.headers.authorization !== undefined)).toBe(true);
    expect(evil.saw(JOB_PASSWORD)).toBe(true);
    expect(evil.saw(tb.registryPassword)).toBe(false);
  });

  it("a job on the configured registry still pulls and pushes with the node's credentials", async () => {
    const view = await prepare(ids.legit);
    if (view.push.ref) refs.push(view.push.ref);
    expect(view.status).toBe('ready');
    expect(view.cache.ref?.startsWith(`${tb.registry}/${namespace}/`)).toBe(true);
    expect(view.push, JSON.stringify(view)).toMatchObject({ status: 'pushed' });
    expect(evil.saw(tb.registryPassword)).toBe(false);
  });
});
