import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { cleanUp, containersWithLabel } from '../../support/docker.js';
import { makeRepo, runId } from '../../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../../support/throttle-proxy.js';

/**
 * SIGTERM while a cache push runs (issue 3, Acceptance: "SIGTERM during a
 * push: the push gets its grace, the process exits 0, state on disk is
 * complete"). The push is made slow with a throttle proxy in front of the
 * testbed registry; the `small` fixture pushes a ~12 MB layer.
 */
const tb = loadTestbed();

interface Made {
  run: string;
  id: string;
  dirs: string[];
  refs: string[];
}
const made: Made[] = [];
const agents: Agent[] = [];
const proxies: ThrottleProxy[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface PushView {
  status: string;
  ref: string | null;
  reason: string | null;
  ms: number | null;
}
interface View {
  id: string;
  status: string;
  push: PushView | null;
  cache: { ref: string | null } | null;
  containerId: string | null;
  containerMissing?: boolean;
  error: { code: string } | null;
}
interface StoredRecord {
  id: string;
  status: string;
  result: { outcome: string; containerId: string; push: PushView } | null;
}

/** A fresh run: its repository (the `small` fixture), state and runtime dirs, a throttle proxy, an agent. */
async function scenario(prefix: string, o: { graceSeconds: number; bytesPerSecond: number }) {
  const run = runId(prefix);
  const id = `${run}-ws`;
  // The agent's own TMPDIR (its per-job dirs), so what an exit leaves there is found and removed.
  const tmp = await mkdtemp(join(tmpdir(), 'warmstart-tmp-'));
  const base = await testEnv(tb.baseImage, { TMPDIR: tmp });
  const m: Made = { run, id, dirs: [base.WARMSTART_STATE_DIR!, base.WARMSTART_RUNTIME_DIR!, tmp], refs: [] };
  made.push(m);
  const repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'small' });
  m.dirs.push(dirname(dirname(repo)));
  const proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: o.bytesPerSecond, maxLifetimeMs: 280_000 });
  proxies.push(proxy);
  const agent = await startAgent(base, { env: { WARMSTART_SHUTDOWN_GRACE_SECONDS: String(o.graceSeconds) } });
  agents.push(agent);
  m.dirs.push(dirname(agent.env.WARMSTART_API_TOKEN_FILE!));
  const namespace = `warmstart-test/${run}`;
  const res = await post(agent, {
    id,
    repository: repo,
    cache: { registry: `${proxy.host}/${namespace}`, username: tb.registryUser, password: tb.registryPassword },
  });
  expect(res.status, await res.clone().text()).toBe(202);
  return { run, id, base, m, proxy, agent, namespace, stateDir: base.WARMSTART_STATE_DIR!, tmp };
}

function post(agent: Agent, body: unknown): Promise<Response> {
  return agent.request('/v1/workspaces', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Waits for ready and checks the push is still under way then. */
async function readyWithPushPending(agent: Agent, id: string, m: Made): Promise<View> {
  const view = (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], 240_000)) as unknown as View;
  expect(view.status, JSON.stringify(view)).toBe('ready');
  expect(view.cache?.ref).toBeTruthy();
  m.refs.push(view.cache!.ref!);
  expect(view.push?.status, JSON.stringify(view.push)).toBe('pending');
  return view;
}

/**
 * SIGTERM now; resolves with the exit code (undefined: ended by a signal) and
 * how long the process took to exit. A process still there after `limitMs`
 * is killed (-9) and reported as `hung`.
 */
async function sigterm(agent: Agent, limitMs: number): Promise<{ code: number | undefined; ms: number; hung: boolean }> {
  const t0 = Date.now();
  const exited = agent.term().then((code) => ({ code, ms: Date.now() - t0, hung: false }));
  const late = sleep(limitMs).then(() => null);
  const first = await Promise.race([exited, late]);
  if (first) return first;
  await agent.kill9();
  return { code: undefined, ms: Date.now() - t0, hung: true };
}

/** Polls /health until it says shutting-down; the ms it took. */
async function seeShuttingDown(agent: Agent): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await fetch(`${agent.url}/health`);
    expect(r.status).toBe(200);
    const h = (await r.json()) as { status: string };
    if (h.status === 'shutting-down') return Date.now() - t0;
    expect(h.status).toBe('ok');
    if (Date.now() - t0 > 3_000) throw new Error('/health never said shutting-down after SIGTERM');
    await sleep(20);
  }
}

async function storedRecord(stateDir: string, id: string): Promise<StoredRecord> {
  // JSON.parse throws on a torn or partial file: the record must be complete.
  return JSON.parse(await readFile(join(stateDir, 'workspaces', id, 'workspace.json'), 'utf8')) as StoredRecord;
}

async function storedEvents(stateDir: string, id: string): Promise<{ type: string; status?: string }[]> {
  const text = await readFile(join(stateDir, 'workspaces', id, 'events.ndjson'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; status?: string });
}

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null && !a.process.killed) await a.kill9().catch(() => undefined);
  for (const p of proxies) await p.close();
  for (const m of made) {
    await cleanUp({ runId: m.run, workspaceIds: [m.id], refs: m.refs });
    for (const d of m.dirs) await rm(d, { recursive: true, force: true });
  }
});

describe('warmstart serve: SIGTERM during a push (real engine, registry, devcontainers CLI)', () => {
  it('the push gets its grace: new jobs 503, exit 0, record complete with push pushed', async () => {
    // ~13 MB at 2 MB/s: a push of some 6-7 s, well inside the 30 s grace.
    const s = await scenario('termpush', { graceSeconds: 30, bytesPerSecond: 2_000_000 });
    await readyWithPushPending(s.agent, s.id, s.m);
    const bytesAtTerm = s.proxy.bytesUp();

    const exited = sigterm(s.agent, 40_000);
    const noticedMs = await seeShuttingDown(s.agent);
    // While it drains: no new jobs, and nothing is made for the refused one.
    const refusedId = `${s.run}-late`;
    const late = await post(s.agent, { id: refusedId, repository: 'acme/whatever' });
    expect(late.status).toBe(503);
    expect(((await late.json()) as { code: string }).code).toBe('SHUTTING_DOWN');
    expect((await s.agent.request(`/v1/workspaces/${refusedId}`)).status).toBe(404);
    // The workspace is still readable, push still under way.
    const during = (await (await s.agent.request(`/v1/workspaces/${s.id}`)).json()) as View;
    expect(during.push?.status).toBe('pending');

    const { code, ms, hung } = await exited;
    expect(hung, 'still running 40 s after SIGTERM').toBe(false);
    expect(code, s.agent.output().slice(-3000)).toBe(0);
    expect(ms).toBeLessThan(30_000);
    await expect(fetch(`${s.agent.url}/health`)).rejects.toThrow(); // closed
    expect(s.agent.output()).toMatch(/"msg":"stopped"/);
    expect(s.agent.output()).not.toMatch(/grace period over/);

    const rec = await storedRecord(s.stateDir, s.id);
    expect(rec.status).toBe('ready');
    expect(rec.result?.outcome).toBe('ready');
    expect(rec.result?.push.status, JSON.stringify(rec.result?.push)).toBe('pushed');
    expect(rec.result?.push.ms).toBeGreaterThan(2_000); // it really was slow
    const events = await storedEvents(s.stateDir, s.id);
    expect(events.at(-1)).toMatchObject({ type: 'push', status: 'pushed' });
    expect(s.proxy.bytesUp() - bytesAtTerm).toBeGreaterThan(1_000_000); // bytes kept flowing after SIGTERM
    // The pushed image is in the registry (read directly, past the proxy).
    const ref = rec.result!.push.ref!;
    const path = ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
    const manifest = await fetch(`http://${tb.registry}/v2/${path}/manifests/devcontainer-cache`, {
      headers: {
        authorization: `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}`,
        accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
      },
    });
    expect(manifest.status).toBe(200);
    // SIGTERM leaves the workspace container running.
    expect(await containersWithLabel(`warmstart.workspace=${s.id}`)).toEqual([rec.result!.containerId.slice(0, 12)]);

    console.log(
      `SIGTERM with 30 s grace: /health said shutting-down after ${noticedMs} ms, exit ${code} after ${ms} ms, ` +
        `push ${rec.result?.push.status} in ${rec.result?.push.ms} ms, ${s.proxy.bytesUp()} bytes through the proxy`,
    );
  });

  it('grace shorter than the push: exits 0 promptly; the push is left pending, and a restart records it failed', async () => {
    // ~13 MB at 250 kB/s: ~50 s, far beyond the 2 s grace.
    const s = await scenario('termshort', { graceSeconds: 2, bytesPerSecond: 250_000 });
    await readyWithPushPending(s.agent, s.id, s.m);

    const { code, ms, hung } = await sigterm(s.agent, 20_000);
    expect(hung, `still running ${ms} ms after SIGTERM with a 2 s grace`).toBe(false);
    expect(code, s.agent.output().slice(-3000)).toBe(0);
    expect(ms, 'exit after SIGTERM took too long').toBeLessThan(2_000 + 5_000);
    expect(ms).toBeGreaterThanOrEqual(1_900); // it did wait for the push
    expect(s.agent.output()).toMatch(/grace period over with pushes or jobs still running/);
    expect(s.agent.output()).toMatch(/"msg":"stopped"/); // the last log line was not lost to the exit
    const bytesAtExit = s.proxy.bytesUp();

    const rec = await storedRecord(s.stateDir, s.id);
    expect(rec.status).toBe('ready');
    expect(rec.result?.push.status, JSON.stringify(rec.result?.push)).toBe('pending');
    // The job's dir, with its DOCKER_CONFIG holding the registry credentials, is
    // left when the push is cut off; the next start sweeps it (checked below).
    const jobsDir = join(s.agent.env.WARMSTART_RUNTIME_DIR!, 'jobs');
    const jobDirsLeft = await readdir(jobsDir).catch(() => [] as string[]);
    const pushAtExit = rec.result?.push.status;

    // The next start settles it: the push did not finish.
    const again = await startAgent({}, { reuse: s.agent });
    agents.push(again);
    const view = (await waitForStatus(again, s.id, ['ready', 'recovery', 'failed'], 10_000)) as unknown as View;
    expect(view.status).toBe('ready');
    expect(view.push?.status).toBe('failed');
    expect(view.push?.reason).toBe('the agent restarted before the push finished');
    expect(view.containerMissing).toBeUndefined(); // the container outlived the agent
    const after = await storedRecord(s.stateDir, s.id);
    expect(after.result?.push.status).toBe('failed');
    expect(await readdir(jobsDir).catch(() => [] as string[])).toEqual([]);
    expect(await again.term()).toBe(0);

    // With the agent gone, Docker drops the push (its API connection closed):
    // the proxy still passes on what sat in socket buffers at the throttled
    // rate, then nothing more, and no manifest ever reaches the registry.
    let last = -1;
    let stableSince = Date.now();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && Date.now() - stableSince < 4_000) {
      const now = s.proxy.bytesUp();
      if (now !== last) {
        last = now;
        stableSince = Date.now();
      }
      await sleep(250);
    }
    expect(Date.now() - stableSince, 'bytes still flowing to the registry a minute after the agent exited').toBeGreaterThanOrEqual(4_000);
    expect(last).toBeLessThan(12_000_000);
    const ref = s.m.refs[0]!;
    const path = ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
    const manifest = await fetch(`http://${tb.registry}/v2/${path}/manifests/devcontainer-cache`, {
      headers: { authorization: `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}` },
    });
    expect(manifest.status).toBe(404);
    console.log(
      `SIGTERM with 2 s grace: exit ${code} after ${ms} ms; push at exit: ${pushAtExit}; after restart: ${view.push?.status}; ` +
        `${bytesAtExit} bytes through the proxy at exit, ${last} when they stopped (of ~13 MB), manifest ${manifest.status}; ` +
        `job dirs left at exit: ${jobDirsLeft.length} (swept at the next start)`,
    );
  });
});
