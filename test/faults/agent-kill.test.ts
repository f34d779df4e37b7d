import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { startControlPlane, type ReceivedCall } from '../support/control-plane.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { faultRow, githubAppEnv, suiteSecrets } from '../support/faults.js';
import { agentInvariants, cliProcessesFor } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { sleep, until } from '../support/wait.js';
import { eventsOnDisk, type LoggedEvent as Ev } from '../support/events.js';

/**
 * The agent killed (SIGKILL) at each phase of a real job and started again on
 * the same state and runtime dirs. A phase that is over in milliseconds is
 * held open with the agent's WARMSTART_FAILPOINTS test seam (the killed agent
 * only; the restarted one has none). After the restart: a job cut off before
 * ready is failed AGENT_RESTARTED with no devcontainers CLI and no container
 * left and its volume kept if it had one, and posting the same id again ends
 * ready; a workspace that was ready stays ready (its push marked failed, its
 * callback delivered with the same Idempotency-Key).
 */
const tb = loadTestbed();
const run = runId('fk9');
const namespace = `warmstart-test/${run}`;
const agents: Agent[] = [];
const closers: { close(): Promise<void> }[] = [];
const ids: string[] = [];

interface View {
  status: string;
  containerId: string | null;
  containerMissing?: boolean;
  error: { code: string; message: string } | null;
  push: { status: string; ref: string | null; reason: string | null } | null;
}

async function view(agent: Agent, id: string): Promise<View> {
  const r = await agent.request(`/v1/workspaces/${id}`);
  expect(r.status, await r.clone().text()).toBe(200);
  return (await r.json()) as View;
}

function post(agent: Agent, body: Record<string, unknown>): Promise<Response> {
  return agent.request('/v1/workspaces', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function accepted(agent: Agent, body: Record<string, unknown>): Promise<void> {
  const r = await post(agent, body);
  expect(r.status, await r.clone().text()).toBe(202);
}

/** A fresh state, runtime and temp dir for one row; the agent gets the suite's token and GitHub App key. */
async function freshEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const tmp = await mkdtemp(join(tmpdir(), 'warmstart-tmp-'));
  return testEnv(tb.baseImage, {
    TMPDIR: tmp,
    ...githubAppEnv(),
    // Cache on (an open registry, no credentials: pull only), so the cache phases run as in production.
    WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/${namespace}`,
    ...extra,
  });
}

async function serve(env: Record<string, string>, o: { reuse?: Agent; failpoints?: string } = {}): Promise<Agent> {
  const agent = await startAgent(env, {
    token: suiteSecrets().apiToken,
    ...(o.reuse ? { reuse: o.reuse } : {}),
    env: { WARMSTART_FAILPOINTS: o.failpoints ?? '' },
  });
  agents.push(agent);
  return agent;
}

/** Containers of the run that belong to no workspace: a build's RUN step containers (the fixtures' label). */
async function buildContainers(): Promise<string[]> {
  const r = await execa(
    'docker',
    ['ps', '-a', '--filter', `label=warmstart.test-run=${run}`, '--format', '{{.ID}} {{.Label "warmstart.workspace"}} {{.Image}}'],
    { reject: false },
  );
  return String(r.stdout)
    .split('\n')
    .filter(Boolean)
    .filter((l) => l.split(' ')[1] === '');
}

async function temporaries(stateDir: string): Promise<string[]> {
  return (await readdir(stateDir, { recursive: true })).filter((n) => n.endsWith('.tmp'));
}

let quickRepo: string;
let slowRepo: string;
let pushRepo: string;

beforeAll(async () => {
  const devcontainer = '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n';
  quickRepo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': devcontainer,
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo quick > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'quick' },
  );
  slowRepo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': devcontainer,
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo slow-build && sleep 5 && echo slow > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'slow' },
  );
  pushRepo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': devcontainer,
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN head -c 4000000 /dev/urandom > /payload\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'pushy' },
  );
});

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null && !a.process.killed) await a.kill9().catch(() => undefined);
  for (const c of closers) await c.close().catch(() => undefined);
  await cleanUp({ runId: run, workspaceIds: ids });
  const left = await containersWithLabel(`warmstart.test-run=${run}`);
  if (left.length) await cleanUp({ runId: run });
});

/**
 * Kills the agent once the job has entered `phase` (held open by a failpoint,
 * or for `up` by a build step that sleeps), restarts it, checks the node, and
 * posts the same id again. Returns the row's observed line.
 */
async function killDuring(phase: string, o: { repo: string; failpoint: boolean; waitFor?: (events: Ev[]) => boolean }): Promise<string> {
  const id = `${run}-${phase}`;
  ids.push(id);
  const volume = `warmstart-ws-${id}`;
  const env = await freshEnv();
  const stateDir = env.WARMSTART_STATE_DIR!;
  const first = await serve(env, o.failpoint ? { failpoints: `pause:${phase}=20000` } : {});
  await accepted(first, { id, repository: o.repo });
  const entered = o.waitFor ?? ((evs: Ev[]) => evs.some((e) => e.type === 'phase-start' && e.phase === phase));
  await until(`phase ${phase} to start`, async () => entered(await eventsOnDisk(stateDir, id)), 60_000);
  const before = await eventsOnDisk(stateDir, id);
  // Still inside the phase: it has not ended, and the job has no outcome.
  expect(before.some((e) => e.type === 'phase-end' && e.phase === phase)).toBe(false);
  expect(before.some((e) => e.type === 'outcome')).toBe(false);
  const hadVolume = await volumeExists(volume);
  const cliPid = await readFile(join(stateDir, 'workspaces', id, 'cli.pid'), 'utf8').then(
    (t) => Number(t.trim()),
    () => null,
  );
  const cliBefore = await cliProcessesFor(id);
  await first.kill9();

  const second = await serve(env, { reuse: first });
  const after = await view(second, id);
  expect(after.status).toBe('failed');
  expect(after.error?.code).toBe('AGENT_RESTARTED');
  expect(await volumeExists(volume)).toBe(hadVolume);
  const afterRestart = await agentInvariants(second, [id], hadVolume ? [volume] : []);
  expect(await temporaries(stateDir)).toEqual([]);
  // A build the killed agent had started leaves no container behind (the classic builder's RUN container).
  await until('the build containers of the killed job to go', async () => (await buildContainers()).length === 0, 15_000, 250);

  // Nothing is wedged: the same id again, on the restarted agent, ends ready.
  await accepted(second, { id, repository: o.repo });
  const again = (await waitForStatus(second, id, ['ready', 'recovery', 'failed'], 120_000)) as unknown as View;
  expect(again.status, JSON.stringify(again.error)).toBe('ready');
  expect(again.error).toBeNull();
  const final = await agentInvariants(second, [id], [volume]);
  await second.term();

  const cli = cliPid === null ? 'no CLI yet' : `CLI (${cliBefore.length} process at kill) stopped`;
  return `after restart: ${after.status} ${after.error?.code}, ${cli}, volume ${hadVolume ? 'kept' : 'not made yet'}, ${afterRestart}; same id posted again: ${again.status}; ${final}`;
}

describe('the agent killed (SIGKILL) at each phase, restarted on the same state', () => {
  for (const phase of ['clone', 'volume', 'remove-old', 'config', 'exact-lookup', 'override']) {
    it(`kill -9 during ${phase}`, async () => {
      await faultRow(
        {
          fault: `agent killed (SIGKILL) during ${phase}, restarted`,
          expected: 'failed AGENT_RESTARTED, no CLI/container left, volume kept if made; same id posted again ends ready',
        },
        () => killDuring(phase, { repo: quickRepo, failpoint: true }),
      );
    });
  }

  it('kill -9 during up, while the devcontainers CLI builds', async () => {
    await faultRow(
      {
        fault: 'agent killed (SIGKILL) during up (docker build running), restarted',
        expected: 'failed AGENT_RESTARTED, leftover CLI stopped, no container, volume kept; same id posted again ends ready',
      },
      () =>
        killDuring('up', {
          repo: slowRepo,
          failpoint: false,
          // Inside the RUN step that sleeps: the CLI and a docker build are running.
          waitFor: (evs) => evs.some((e) => e.type === 'log' && /slow-build/.test(e.text ?? '') && !/RUN /.test(e.text ?? '')),
        }),
    );
  });

  it('kill -9 after ready, while the background push runs', async () => {
    await faultRow(
      {
        fault: 'agent killed (SIGKILL) after ready, push running',
        expected: 'stays ready, container kept, push marked failed; the ref can be pushed again after the restart',
      },
      async () => {
        // A slow registry (a throttling proxy in front of the real one) keeps the push going.
        const proxy: ThrottleProxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: 1_000_000, maxLifetimeMs: 240_000 });
        closers.push(proxy);
        const id = `${run}-push`;
        ids.push(id);
        const volume = `warmstart-ws-${id}`;
        const env = await freshEnv();
        const cache = { registry: `${proxy.host}/${namespace}`, username: tb.registryUser, password: tb.registryPassword };
        const first = await serve(env);
        await accepted(first, { id, repository: pushRepo, cache });
        const ready = (await waitForStatus(first, id, ['ready', 'recovery', 'failed'], 120_000)) as unknown as View;
        expect(ready.status, JSON.stringify(ready.error)).toBe('ready');
        await until('the push to be under way', async () => proxy.bytesUp() > 500_000, 60_000);
        const during = await view(first, id);
        expect(during.push?.status).toBe('pending');
        await first.kill9();
        const sentAtKill = proxy.bytesUp();

        const second = await serve(env, { reuse: first });
        const after = await view(second, id);
        expect(after.status).toBe('ready');
        expect(after.containerId).toBe(ready.containerId);
        expect(after.containerMissing).toBeUndefined();
        expect(after.push?.status).toBe('failed');
        expect(after.push?.reason).toMatch(/restarted/);
        const inv = await agentInvariants(second, [id], [volume]);

        // A ready workspace is not prepared twice: the same POST is answered with it (from the record the
        // first agent wrote), another body for the id is refused...
        const dup = await post(second, { id, repository: pushRepo, cache });
        expect(dup.status).toBe(200);
        expect(await dup.json()).toMatchObject({ id, status: 'ready', existing: true, containerId: ready.containerId });
        const other = await post(second, { id, repository: pushRepo, cache, lightweight: true });
        expect(other.status).toBe(409);
        expect(await other.json()).toMatchObject({ code: 'WORKSPACE_EXISTS' });
        // ...and the ref is not wedged: deleted and posted again, it is built and pushed.
        expect((await second.request(`/v1/workspaces/${id}?purge=true`, { method: 'DELETE' })).status).toBe(200);
        await accepted(second, { id, repository: pushRepo, cache });
        const again = await until(
          'the new push to settle',
          async () => {
            const v = await view(second, id);
            return v.status !== 'queued' && v.status !== 'creating' && v.push?.status !== 'pending' ? v : null;
          },
          180_000,
          250,
        );
        expect(again.status).toBe('ready');
        expect(again.push?.status).toBe('pushed');
        const final = await agentInvariants(second, [id], [volume]);
        await second.term();
        return `killed with ${sentAtKill} bytes pushed; after restart: ${after.status}, same container, push ${after.push?.status} (${after.push?.reason}); ${inv}; POST same id: ${dup.status}; purged and posted again: ${again.status}, push ${again.push?.status}; ${final}`;
      },
    );
  });

  it('kill -9 after ready, before the control plane accepted the ready callback', async () => {
    await faultRow(
      {
        fault: 'agent killed (SIGKILL) after ready, ready callback not yet accepted',
        expected: 'stays ready; the callback is delivered after the restart with the same Idempotency-Key, once',
      },
      async () => {
        const cp = await startControlPlane({ refuseFirst: 1_000_000 });
        closers.push(cp);
        const id = `${run}-callback`;
        ids.push(id);
        const volume = `warmstart-ws-${id}`;
        // The control plane listens on 127.0.0.1: listed, or its callbacks would be refused.
        const env = await freshEnv({ WARMSTART_CALLBACK_ORIGINS: cp.url });
        const readyCalls = (): ReceivedCall[] => cp.calls.filter((c) => c.path === `/workspaces/${id}/ready`);
        const callback = { url: cp.url, token: `cb-${run}-${Math.random().toString(36).slice(2)}` };
        const first = await serve(env);
        await accepted(first, { id, repository: quickRepo, lightweight: true, callback });
        const ready = (await waitForStatus(first, id, ['ready', 'recovery', 'failed'], 60_000)) as unknown as View;
        expect(ready.status).toBe('ready');
        await until('a refused ready callback', async () => readyCalls().some((c) => c.answered === 503), 30_000);
        await first.kill9();
        const refused = readyCalls();
        const key = refused[0]!.idempotencyKey;
        expect(key).toBeTruthy();

        cp.setRefuse(0);
        const second = await serve(env, { reuse: first });
        const delivered = await until('the ready callback to be accepted', async () => readyCalls().find((c) => c.answered === 200), 30_000);
        expect(delivered.idempotencyKey).toBe(key);
        expect(readyCalls().every((c) => c.idempotencyKey === key)).toBe(true);
        expect((delivered.body as { status: string }).status).toBe('ready');
        const after = await view(second, id);
        expect(after.status).toBe('ready');
        expect(after.containerId).toBe(ready.containerId);
        await until(
          'the callback to leave the outbox',
          async () => (await readdir(join(env.WARMSTART_RUNTIME_DIR!, 'callbacks'))).filter((n) => n.endsWith('.json')).length === 0,
          10_000,
        );
        await sleep(1_500);
        const accepted200 = readyCalls().filter((c) => c.answered === 200).length;
        expect(accepted200).toBe(1);
        // The control plane's retry of its POST after the restart: answered with the workspace, no second job or callback.
        const dup = await post(second, { id, repository: quickRepo, lightweight: true, callback });
        expect(dup.status).toBe(200);
        expect(await dup.json()).toMatchObject({ id, status: 'ready', existing: true });
        const inv = await agentInvariants(second, [id], [volume]);
        await second.term();
        return `${refused.length} refused before the kill; after restart: ${after.status}, same container, callback accepted with the same Idempotency-Key (${readyCalls().length} attempts, ${accepted200} accepted); POST same id: ${dup.status}; ${inv}`;
      },
    );
  });
});
