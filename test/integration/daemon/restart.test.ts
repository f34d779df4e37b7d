import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { startControlPlane, type ReceivedCall } from '../../support/control-plane.js';
import { cleanUp, containersWithLabel, volumeExists } from '../../support/docker.js';
import { makeRepo, runId } from '../../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';
import { sleep, until } from '../../support/wait.js';
import { eventsOnDisk as events } from '../../support/events.js';

/**
 * `warmstart serve` dies hard (kill -9) and comes back on the same state and
 * runtime dirs (issue 3, Acceptance: "kill -9 during a build, restart ..." and
 * "kill -9 after ready but before the ready callback was accepted ..."): the
 * interrupted job is failed AGENT_RESTARTED with nothing of it left running
 * and its volume kept; a callback the control plane had not accepted yet is
 * delivered after the restart, with the same Idempotency-Key.
 */
const tb = loadTestbed();

interface Made {
  run: string;
  ids: string[];
  dirs: string[];
}
const made: Made[] = [];
const agents: Agent[] = [];
const controlPlanes: { close(): Promise<void> }[] = [];

/** A fresh state dir, runtime dir and run id; everything is removed in afterAll. */
async function scenario(prefix: string): Promise<{ run: string; id: string; base: Record<string, string>; m: Made }> {
  const run = runId(prefix);
  // The agent's own TMPDIR (its per-job dirs, the devcontainers CLI's files): a kill -9 leaves them behind.
  const tmp = await mkdtemp(join(tmpdir(), 'warmstart-tmp-'));
  const base = await testEnv(tb.baseImage, { TMPDIR: tmp });
  const m: Made = { run, ids: [`${run}-ws`], dirs: [base.WARMSTART_STATE_DIR!, base.WARMSTART_RUNTIME_DIR!, tmp] };
  made.push(m);
  return { run, id: `${run}-ws`, base, m };
}

async function serve(base: Record<string, string>, m: Made, reuse?: Agent): Promise<Agent> {
  const agent = await startAgent(base, reuse ? { reuse } : {});
  agents.push(agent);
  if (!reuse) m.dirs.push(dirname(agent.env.WARMSTART_API_TOKEN_FILE!));
  return agent;
}

function post(agent: Agent, body: unknown): Promise<Response> {
  return agent.request('/v1/workspaces', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Live (non-zombie) processes whose process group is `pgid`, as "pid comm". */
async function liveProcessesInGroup(pgid: number): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = await readFile(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parens
      const close = s.lastIndexOf(')');
      const [state, , pgrp] = s.slice(close + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') out.push(`${name} ${s.slice(s.indexOf('(') + 1, close)}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Every regular file under dir (recursively), as [path, content]. */
async function filesUnder(dir: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if ((await stat(path)).size > 50_000_000) continue;
    out.push([path, await readFile(path, 'latin1')]);
  }
  return out;
}

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null && !a.process.killed) await a.kill9().catch(() => undefined);
  for (const cp of controlPlanes) await cp.close();
  for (const m of made) {
    await cleanUp({ runId: m.run, workspaceIds: m.ids });
    for (const d of m.dirs) await rm(d, { recursive: true, force: true });
  }
});

describe('warmstart serve: kill -9 and restart (real engine, devcontainers CLI)', () => {
  it('kill -9 during a build: failed AGENT_RESTARTED, no container (not even later), leftover CLI stopped, volume kept', async () => {
    const { run, id, base, m } = await scenario('k9build');
    const repo = await makeRepo(
      {
        '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
        '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN sleep 20 && echo built > /built\n',
      },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'slowbuild' },
    );
    m.dirs.push(dirname(dirname(repo)));
    const stateDir = base.WARMSTART_STATE_DIR!;

    const first = await serve(base, m);
    const res = await post(first, { id, repository: repo });
    expect(res.status, await res.clone().text()).toBe(202);

    await waitForStatus(first, id, ['creating'], 60_000);
    // The `up` phase started, and the build is at its `RUN sleep 20` step.
    await until('the up phase to start', async () => (await events(stateDir, id)).some((e) => e.type === 'phase-start' && e.phase === 'up'), 120_000);
    await until(
      'the build to reach RUN sleep 20',
      async () => (await events(stateDir, id)).some((e) => e.type === 'log' && /sleep 20/.test(e.text ?? '')),
      120_000,
    );
    await sleep(1_500); // well inside the 20 s step
    const before = (await events(stateDir, id)).map((e) => e.type);
    expect(before).not.toContain('outcome');
    // Container-less: the workspace has no container yet, only the build runs.
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
    // The devcontainers CLI is recorded so that a restarted agent can stop it.
    const cliPid = Number((await readFile(join(stateDir, 'workspaces', id, 'cli.pid'), 'utf8')).trim());
    expect(cliPid).toBeGreaterThan(1);
    expect((await liveProcessesInGroup(cliPid)).length).toBeGreaterThan(0);
    const buildContainers = await containersWithLabel(`warmstart.test-run=${run}`); // the classic builder's RUN container

    const killedAt = Date.now();
    await first.kill9();
    expect(first.process.killed || first.process.signalCode === 'SIGKILL').toBe(true);

    const second = await serve(base, m, first);
    const view = await waitForStatus(second, id, ['failed', 'ready', 'recovery'], 10_000);
    expect(view.status).toBe('failed');
    expect((view.error as { code: string }).code).toBe('AGENT_RESTARTED');
    expect(second.output()).toMatch(/job interrupted by an agent restart marked failed/);
    // The record on disk says the same, and the pid file is gone.
    const record = JSON.parse(await readFile(join(stateDir, 'workspaces', id, 'workspace.json'), 'utf8')) as {
      status: string;
      error: { code: string };
    };
    expect(record.status).toBe('failed');
    expect(record.error.code).toBe('AGENT_RESTARTED');
    await expect(stat(join(stateDir, 'workspaces', id, 'cli.pid'))).rejects.toThrow();

    // Nothing of the job runs any more: no CLI, no docker build client.
    const leftover = await liveProcessesInGroup(cliPid);
    const stoppedByReconcile = /stopped a devcontainers CLI left by the previous agent/.test(second.output());
    expect(leftover, `processes of the old CLI's group still running (reconcile stopped one: ${stoppedByReconcile})`).toEqual([]);
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
    expect(await volumeExists(`warmstart-ws-${id}`)).toBe(true);

    // Past the end of `RUN sleep 20` (and time to create a container): still
    // none, so no leftover CLI went on to finish the build and start it.
    await sleep(Math.max(0, killedAt + 30_000 - Date.now()));
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
    expect(await containersWithLabel(`warmstart.test-run=${run}`), 'a build container of the job is left').toEqual([]);
    expect(await liveProcessesInGroup(cliPid)).toEqual([]);
    expect(await volumeExists(`warmstart-ws-${id}`)).toBe(true);
    const after = await waitForStatus(second, id, ['failed'], 1_000);
    expect((after.error as { code: string }).code).toBe('AGENT_RESTARTED');
    // The new agent did not pick the job up again.
    expect((await events(stateDir, id)).map((e) => e.type)).not.toContain('outcome');

    console.log(
      `kill -9 during build: CLI pid ${cliPid}, build containers at kill: ${buildContainers.length}, ` +
        `reconcile stopped the leftover CLI: ${stoppedByReconcile}`,
    );
    await second.term();
  });

  it('kill -9 after ready, before the ready callback was accepted: delivered after the restart, same Idempotency-Key', async () => {
    const { run, id, base, m } = await scenario('k9cb');
    const repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'small' });
    m.dirs.push(dirname(dirname(repo)));
    const cp = await startControlPlane({ refuseFirst: 1_000_000 });
    controlPlanes.push(cp);
    const cbToken = `cb-${run}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const readyPath = `/workspaces/${id}/ready`;
    const readyCalls = (): ReceivedCall[] => cp.calls.filter((c) => c.path === readyPath);

    // The control plane listens on 127.0.0.1: listed, or its callbacks would be refused.
    const first = await serve({ ...base, WARMSTART_CALLBACK_ORIGINS: cp.url }, m);
    const res = await post(first, { id, repository: repo, lightweight: true, callback: { url: cp.url, token: cbToken } });
    expect(res.status, await res.clone().text()).toBe(202);
    const ready = await waitForStatus(first, id, ['ready', 'recovery', 'failed'], 120_000);
    expect(ready.status).toBe('ready');
    await until('a refused ready callback', async () => readyCalls().some((c) => c.answered === 503), 30_000, 50);
    // It is pending on disk, in the runtime dir (not the state dir).
    const cbDir = join(base.WARMSTART_RUNTIME_DIR!, 'callbacks');
    expect((await readdir(cbDir)).filter((n) => n.endsWith('.json'))).toHaveLength(1);

    await first.kill9();
    const refused = readyCalls();
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.every((c) => c.answered === 503)).toBe(true);
    const key = refused[0]!.idempotencyKey;
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect(refused.every((c) => c.idempotencyKey === key)).toBe(true);

    cp.setRefuse(0);
    const second = await serve(base, m, first);
    const delivered = await until('the ready callback to be accepted', async () => readyCalls().find((c) => c.answered === 200), 30_000, 50);
    expect(delivered.method).toBe('POST');
    expect(delivered.authorization).toBe(`Bearer ${cbToken}`);
    expect(delivered.idempotencyKey).toBe(key);
    const body = delivered.body as { workspaceId: string; status: string; workspace: { id: string; status: string } };
    expect(body.status).toBe('ready');
    expect(body.workspaceId).toBe(id);
    expect(body.workspace.id).toBe(id);
    expect(body.workspace.status).toBe('ready');

    // Once accepted, it is forgotten: the file goes and it is not sent again.
    await until('the callback file to be removed', async () => (await readdir(cbDir)).filter((n) => n.endsWith('.json')).length === 0, 10_000);
    await sleep(2_000);
    expect(readyCalls().filter((c) => c.answered === 200)).toHaveLength(1);
    expect(cp.calls.filter((c) => c.path.includes('provisioning-failed'))).toEqual([]);
    // The workspace itself was not disturbed by the restart.
    const view = await waitForStatus(second, id, ['ready'], 5_000);
    expect(view.containerMissing).toBeUndefined();

    // The callback token never reached the logs or the state dir.
    await second.term();
    expect(first.output()).not.toContain(cbToken);
    expect(second.output()).not.toContain(cbToken);
    for (const [path, content] of await filesUnder(base.WARMSTART_STATE_DIR!)) {
      expect(content.includes(cbToken), `callback token in ${path}`).toBe(false);
    }
    console.log(`ready callback: ${refused.length} refused attempt(s) before kill -9, delivered after restart with key ${key}`);
  });

  it('a failed job calls provisioning-failed', async () => {
    const { run, id, base, m } = await scenario('cbfail');
    const cp = await startControlPlane({ refuseFirst: 1 });
    controlPlanes.push(cp);
    const cbToken = `cb-${run}-${Math.random().toString(36).slice(2)}`;
    const agent = await serve({ ...base, WARMSTART_CALLBACK_ORIGINS: cp.url }, m);
    const missing = `/nonexistent-${run}/acme/repo`;
    const res = await post(agent, { id, repository: missing, callback: { url: `${cp.url}/`, token: cbToken } });
    expect(res.status, await res.clone().text()).toBe(202);
    const view = await waitForStatus(agent, id, ['failed', 'ready', 'recovery'], 60_000);
    expect(view.status).toBe('failed');
    expect((view.error as { code: string }).code).toBe('GIT_CLONE_FAILED');

    const path = `/workspaces/${id}/provisioning-failed`;
    // The first attempt is refused (503) and retried with backoff.
    const delivered = await until(
      'the provisioning-failed callback',
      async () => cp.calls.find((c) => c.path === path && c.answered === 200),
      30_000,
      50,
    );
    const attempts = cp.calls.filter((c) => c.path === path);
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0]!.answered).toBe(503);
    expect(new Set(attempts.map((c) => c.idempotencyKey)).size).toBe(1);
    expect(delivered.authorization).toBe(`Bearer ${cbToken}`);
    const body = delivered.body as { workspaceId: string; status: string; workspace: { status: string; error: { code: string } } };
    expect(body.workspaceId).toBe(id);
    expect(body.status).toBe('failed');
    expect(body.workspace.status).toBe('failed');
    expect(body.workspace.error.code).toBe('GIT_CLONE_FAILED');
    expect(cp.calls.filter((c) => c.path.endsWith('/ready'))).toEqual([]);
    // Cloning comes first: a repository that cannot be cloned leaves no volume.
    expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
    expect(await agent.term()).toBe(0);
    expect(agent.output()).not.toContain(cbToken);
  });
});
