import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { startControlPlane, type ReceivedCall } from '../support/control-plane.js';
import { cleanUp } from '../support/docker.js';
import { faultRow, githubAppEnv, suiteSecrets } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { sleep, until } from '../support/wait.js';

/**
 * The control plane refuses every call (503) for a while, callbacks and
 * heartbeats alike, then accepts again. The workspace is prepared meanwhile,
 * the agent keeps answering, and each callback is accepted exactly once, with
 * one Idempotency-Key across all its attempts.
 */
const tb = loadTestbed();
const run = runId('fcb');
const ids: string[] = [];
let agent: Agent;
let cp: Awaited<ReturnType<typeof startControlPlane>>;
let repo: string;
let stateDir: string;
let runtimeDir: string;
const cpToken = `cp-${run}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

beforeAll(async () => {
  cp = await startControlPlane();
  repo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo callbacks > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'callbacks' },
  );
  const secrets = await mkdtemp(join(tmpdir(), 'warmstart-cp-'));
  await writeFile(join(secrets, 'cp-token'), `${cpToken}\n`, { mode: 0o600 });
  const env = await testEnv(tb.baseImage, {
    ...githubAppEnv(),
    WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}`,
    WARMSTART_CONTROL_PLANE_URL: cp.url,
    WARMSTART_CONTROL_PLANE_TOKEN_FILE: join(secrets, 'cp-token'),
    WARMSTART_HEARTBEAT_SECONDS: '1',
    WARMSTART_NODE_ID: `node-${run}`,
  });
  stateDir = env.WARMSTART_STATE_DIR!;
  runtimeDir = env.WARMSTART_RUNTIME_DIR!;
  agent = await startAgent(env, { token: suiteSecrets().apiToken });
});

afterAll(async () => {
  if (agent && agent.process.exitCode === null) await agent.term().catch(() => undefined);
  await cp?.close();
  await cleanUp({ runId: run, workspaceIds: ids });
});

/** Polls /health and the workspace while `busy` runs; every answer must be a 200. */
async function serving<T>(id: string, busy: () => Promise<T>): Promise<{ value: T; polls: number; bad: string[] }> {
  let stop = false;
  const bad: string[] = [];
  let polls = 0;
  const poller = (async () => {
    while (!stop) {
      for (const path of ['/health', `/v1/workspaces/${id}`]) {
        const r = await agent.request(path).catch((e: unknown) => ({ status: String(e) }) as { status: number | string });
        polls += 1;
        if (r.status !== 200) bad.push(`${path}: ${r.status}`);
      }
      await sleep(100);
    }
  })();
  try {
    return { value: await busy(), polls, bad };
  } finally {
    stop = true;
    await poller;
  }
}

async function pendingCallbackFiles(): Promise<string[]> {
  return (await readdir(join(runtimeDir, 'callbacks')).catch(() => [])).filter((n) => n.endsWith('.json'));
}

/**
 * Refuses everything until `refusedAttempts` attempts of the callback at
 * `path` were refused, then accepts; returns what the control plane saw.
 */
async function refuseThenAccept(id: string, path: string, refusedAttempts: number, readyMeanwhile: (status: string) => void): Promise<string> {
  const calls = (): ReceivedCall[] => cp.calls.filter((c) => c.path === path);
  const { value, polls, bad } = await serving(id, async () => {
    await until(`${refusedAttempts} refused attempts of ${path}`, () => calls().filter((c) => c.answered === 503).length >= refusedAttempts, 60_000);
    // Still refusing: the workspace is settled anyway, and the callback waits on disk.
    const during = (await (await agent.request(`/v1/workspaces/${id}`)).json()) as { status: string };
    readyMeanwhile(during.status);
    expect(await pendingCallbackFiles()).toHaveLength(1);
    const heartbeatsRefused = cp.calls.filter((c) => c.path.endsWith('/heartbeat') && c.answered === 503).length;
    cp.setRefuse(0);
    const accepted = await until(`${path} to be accepted`, () => calls().find((c) => c.answered === 200), 60_000);
    await until('the callback to leave the outbox', async () => (await pendingCallbackFiles()).length === 0, 10_000);
    // Long enough for a wrongly repeated delivery (the first retry of a fresh callback comes within 1 s).
    await sleep(2_500);
    return { accepted, heartbeatsRefused, during: during.status };
  });
  expect(bad, 'the agent stopped answering while the control plane refused').toEqual([]);
  const all = calls();
  const keys = new Set(all.map((c) => c.idempotencyKey));
  expect(keys.size).toBe(1);
  expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/);
  expect(all.filter((c) => c.answered === 200)).toHaveLength(1);
  expect(all.at(-1)!.answered).toBe(200);
  expect(value.accepted.method).toBe('POST');
  await until('a heartbeat to be accepted again', () => cp.calls.some((c) => c.path.endsWith('/heartbeat') && c.answered === 200), 5_000);
  for (const hb of cp.calls.filter((c) => c.path.endsWith('/heartbeat'))) expect(hb.authorization).toBe(`Bearer ${cpToken}`);
  return `${all.length - 1} refused + 1 accepted attempt(s), 1 Idempotency-Key; workspace ${value.during} meanwhile; ${value.heartbeatsRefused} heartbeats refused, then accepted again; ${polls} API answers while refused, all 200`;
}

describe('the control plane refusing callbacks for a while', () => {
  it('ready callback: refused, then accepted exactly once', async () => {
    await faultRow(
      {
        fault: 'control plane answers 503 to every call for a while (ready callback, heartbeats)',
        expected: 'workspace ready meanwhile; callback retried with one Idempotency-Key, accepted once; agent serving',
      },
      async () => {
        const id = `${run}-ready`;
        ids.push(id);
        const cbToken = `cb-${run}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
        cp.setRefuse(1_000_000);
        await until('a refused heartbeat', () => cp.calls.some((c) => c.path.endsWith('/heartbeat') && c.answered === 503), 5_000);
        const r = await agent.request('/v1/workspaces', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, repository: repo, callback: { url: cp.url, token: cbToken } }),
        });
        expect(r.status, await r.clone().text()).toBe(202);
        const path = `/workspaces/${id}/ready`;
        const seen = await refuseThenAccept(id, path, 3, (status) => expect(status).toBe('ready'));
        const delivered = cp.calls.find((c) => c.path === path && c.answered === 200)!;
        expect(delivered.authorization).toBe(`Bearer ${cbToken}`);
        const body = delivered.body as { workspaceId: string; status: string; workspace: { id: string; status: string; containerId: string } };
        expect(body).toMatchObject({ workspaceId: id, status: 'ready', workspace: { id, status: 'ready' } });
        const view = (await waitForStatus(agent, id, ['ready'], 5_000)) as { containerId: string };
        expect(body.workspace.containerId).toBe(view.containerId);
        expect(cp.calls.filter((c) => c.path.includes(`/workspaces/${id}/`) && c.path !== path)).toEqual([]);
        // Neither token reaches the agent's log or its state dir.
        expect(agent.output()).not.toContain(cbToken);
        expect(agent.output()).not.toContain(cpToken);
        await expectNotInStateDir([cbToken, cpToken]);
        return `${seen}; ${await agentInvariants(agent, [id], [`warmstart-ws-${id}`])}`;
      },
    );
  });

  it('provisioning-failed callback: refused, then accepted exactly once', async () => {
    await faultRow(
      {
        fault: 'control plane answers 503 for a while (provisioning-failed callback)',
        expected: 'workspace failed (its own error) meanwhile; callback retried with one Idempotency-Key, accepted once; agent serving',
      },
      async () => {
        const id = `${run}-failed`;
        ids.push(id);
        const cbToken = `cb-${run}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
        cp.setRefuse(1_000_000);
        const r = await agent.request('/v1/workspaces', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, repository: `/nonexistent-${run}/acme/repo`, callback: { url: cp.url, token: cbToken } }),
        });
        expect(r.status, await r.clone().text()).toBe(202);
        const path = `/workspaces/${id}/provisioning-failed`;
        const seen = await refuseThenAccept(id, path, 3, (status) => expect(status).toBe('failed'));
        const delivered = cp.calls.find((c) => c.path === path && c.answered === 200)!;
        const body = delivered.body as { status: string; workspace: { error: { code: string } } };
        expect(body.status).toBe('failed');
        expect(body.workspace.error.code).toBe('GIT_CLONE_FAILED');
        expect(cp.calls.filter((c) => c.path === `/workspaces/${id}/ready`)).toEqual([]);
        expect(agent.output()).not.toContain(cbToken);
        return `failed ${body.workspace.error.code}; ${seen}; ${await agentInvariants(agent, [id])}`;
      },
    );
  });
});

async function expectNotInStateDir(secrets: string[]): Promise<void> {
  for (const name of await readdir(stateDir, { recursive: true })) {
    const path = join(stateDir, name);
    const text = await readFile(path, 'latin1').catch(() => '');
    for (const s of secrets) expect(text.includes(s), `a token in ${path}`).toBe(false);
  }
}
