import { mkdir, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { startControlPlane } from '../support/control-plane.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { faultRow, githubAppEnv, suiteSecrets } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { until } from '../support/wait.js';

/**
 * The state directory's disk fills up. The agent's state dir is a small tmpfs
 * of its own (8 MiB); a filler file takes every free byte of it at a chosen
 * moment. What the agent promises:
 *
 * - a request it cannot record is refused with 507 STATE_WRITE_FAILED in the
 *   one error shape, and leaves nothing (no record, no directory, no *.tmp);
 * - a job whose state stops fitting on the disk mid-way ends `failed` with
 *   STATE_WRITE_FAILED, visible through the API although the disk refused it
 *   (kept in memory, written once there is room), with no container;
 * - a record that could not be overwritten is still the old one, whole;
 * - once there is room again, new jobs (and the failed one, posted again) end ready.
 */
const tb = loadTestbed();
const run = runId('fdisk');
const ids = { first: `${run}-first`, refused: `${run}-refused`, mid: `${run}-mid` };
let mountpoint: string;
let mounted = false;
let stateDir: string;
let env: Record<string, string>;
let agent: Agent;
const agents: Agent[] = [];
let repo: string;
let cp: Awaited<ReturnType<typeof startControlPlane>>;
const FILLER = 'filler.bin';

/** Takes every free byte of the tmpfs: writes until the disk says ENOSPC, then proves a new page fails too. */
async function fillDisk(): Promise<number> {
  const fh = await open(join(mountpoint, FILLER), 'a');
  let written = 0;
  try {
    for (const chunk of [Buffer.alloc(256 * 1024), Buffer.alloc(4096), Buffer.alloc(1)]) {
      for (;;) {
        try {
          const { bytesWritten } = await fh.write(chunk);
          written += bytesWritten;
          if (bytesWritten < chunk.length) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    await fh.close();
  }
  const probe = await open(join(mountpoint, 'probe'), 'w');
  const fits = await probe.write(Buffer.alloc(4096)).then(
    () => true,
    () => false,
  );
  await probe.close();
  await rm(join(mountpoint, 'probe'), { force: true });
  expect(fits, 'the disk still takes a page after the fill').toBe(false);
  return written;
}

async function freeDisk(): Promise<void> {
  await rm(join(mountpoint, FILLER), { force: true });
}

async function temporaries(): Promise<string[]> {
  return (await readdir(stateDir, { recursive: true })).filter((n) => n.endsWith('.tmp'));
}

async function recordOnDisk(id: string): Promise<{ raw: string; status: string; error?: { code: string } }> {
  const raw = await readFile(join(stateDir, 'workspaces', id, 'workspace.json'), 'utf8');
  return { raw, ...(JSON.parse(raw) as { status: string; error?: { code: string } }) };
}

/** No job running, queued or pushing (the agent's own gauges). */
async function idle(a: Agent): Promise<boolean> {
  const text = await (await a.request('/metrics')).text();
  const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return ['warmstart_jobs_running', 'warmstart_jobs_queued', 'warmstart_pushes_running'].every((g) => gauge(g) === 0);
}

function post(a: Agent, body: Record<string, unknown>): Promise<Response> {
  return a.request('/v1/workspaces', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function ready(a: Agent, id: string): Promise<{ status: string; containerId: string; error: unknown }> {
  const v = (await waitForStatus(a, id, ['ready', 'recovery', 'failed'], 120_000)) as { status: string; containerId: string; error: unknown };
  expect(v.status, JSON.stringify(v.error)).toBe('ready');
  return v;
}

beforeAll(async () => {
  mountpoint = await mkdtemp(join(tmpdir(), 'warmstart-statefs-'));
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mountpoint]);
  mounted = true;
  stateDir = join(mountpoint, 'state');
  await mkdir(stateDir, { mode: 0o700 });
  repo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo full > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'diskfull' },
  );
  cp = await startControlPlane();
  env = await testEnv(tb.baseImage, {
    ...githubAppEnv(),
    WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}`,
    WARMSTART_STATE_DIR: stateDir,
    // The control plane listens on 127.0.0.1: listed, or its callbacks would be refused.
    WARMSTART_CALLBACK_ORIGINS: cp.url,
  });
  agent = await startAgent(env, { token: suiteSecrets().apiToken });
  agents.push(agent);
});

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null) await a.term().catch(() => undefined);
  await cp?.close();
  await cleanUp({ runId: run, workspaceIds: Object.values(ids) });
  if (mounted) {
    // The suite's teardown removes its whole dir; a mount left in it would stop that.
    const r = await execa('umount', [mountpoint], { reject: false });
    if (r.exitCode !== 0) await execa('umount', ['-l', mountpoint], { reject: false });
  }
});

describe('the state directory disk full', () => {
  it('full when a job is posted: refused 507, nothing left, the ready workspace untouched', async () => {
    await faultRow(
      {
        fault: 'state dir disk full (after a workspace is ready), then POST and DELETE',
        expected: '507 STATE_WRITE_FAILED, nothing created, no *.tmp; the existing record whole; agent serving; after freeing, a new job ends ready',
      },
      async () => {
        const created = await post(agent, { id: ids.first, repository: repo });
        expect(created.status, await created.clone().text()).toBe(202);
        const first = await ready(agent, ids.first);
        // Once its job is over (push included), nothing rewrites the record.
        await until('the job to be over', () => idle(agent), 30_000, 100);
        const before = await recordOnDisk(ids.first);

        const filled = await fillDisk();
        const refused = await post(agent, { id: ids.refused, repository: repo });
        expect(refused.status).toBe(507);
        const body = (await refused.json()) as Record<string, unknown>;
        expect(body).toMatchObject({ code: 'STATE_WRITE_FAILED', message: expect.any(String) });
        expect(Object.keys(body).every((k) => ['code', 'message', 'detail'].includes(k))).toBe(true);
        expect(String(body.detail)).toMatch(/ENOSPC|no space/i);
        expect((await agent.request(`/v1/workspaces/${ids.refused}`)).status).toBe(404);
        expect(await stat(join(stateDir, 'workspaces', ids.refused)).catch(() => null)).toBeNull();
        expect(await volumeExists(`warmstart-ws-${ids.refused}`)).toBe(false);

        // A DELETE (without purge) must rewrite the record: refused too, and nothing is removed.
        const del = await agent.request(`/v1/workspaces/${ids.first}`, { method: 'DELETE' });
        expect(del.status).toBe(507);
        expect(await del.json()).toMatchObject({ code: 'STATE_WRITE_FAILED' });
        const after = await recordOnDisk(ids.first);
        expect(after.raw).toBe(before.raw);
        expect(((await (await agent.request(`/v1/workspaces/${ids.first}`)).json()) as { status: string }).status).toBe('ready');
        expect(await containersWithLabel(`warmstart.workspace=${ids.first}`)).toHaveLength(1);
        expect(await temporaries()).toEqual([]);
        const whileFull = await agentInvariants(agent, [ids.first, ids.refused], [`warmstart-ws-${ids.first}`]);

        await freeDisk();
        const again = await post(agent, { id: ids.refused, repository: repo });
        expect(again.status, await again.clone().text()).toBe(202);
        const second = await ready(agent, ids.refused);
        expect(second.containerId).not.toBe(first.containerId);
        const final = await agentInvariants(agent, [ids.first, ids.refused], [`warmstart-ws-${ids.first}`, `warmstart-ws-${ids.refused}`]);
        return (
          `disk filled (${filled} bytes); POST → ${refused.status} ${String(body.code)}, then 404, no dir/volume; DELETE → ${del.status}, record unchanged ` +
          `(${after.status}, ${after.raw.length} bytes, byte-identical); no *.tmp; ${whileFull}; freed: POST → ${second.status}; ${final}`
        );
      },
    );
  });

  it('fills while a job runs: failed STATE_WRITE_FAILED (from memory), old record whole; written and retried once freed', async () => {
    await faultRow(
      {
        fault: 'state dir disk fills while a job is being prepared (at the up phase)',
        expected:
          'failed STATE_WRITE_FAILED visible via the API, no container, volume kept, record on disk whole, callback sent; after freeing: record written, POST again ends ready',
      },
      async () => {
        // The same state, on an agent whose `up` phase waits a moment: the test fills the disk there.
        await agent.term();
        agent = await startAgent(env, { reuse: agent, env: { WARMSTART_FAILPOINTS: 'pause:up=3000' } });
        agents.push(agent);
        const cbToken = `cb-${run}-${Math.random().toString(36).slice(2)}`;
        const created = await post(agent, { id: ids.mid, repository: repo, callback: { url: cp.url, token: cbToken } });
        expect(created.status, await created.clone().text()).toBe(202);
        const eventsPath = join(stateDir, 'workspaces', ids.mid, 'events.ndjson');
        await until(
          'the up phase to start',
          async () => (await readFile(eventsPath, 'utf8').catch(() => '')).includes('"phase-start","phase":"up"'),
          60_000,
        );
        const filled = await fillDisk();

        const failed = (await waitForStatus(agent, ids.mid, ['ready', 'recovery', 'failed'], 120_000)) as {
          status: string;
          error: { code: string; message: string } | null;
          containerId: string | null;
        };
        expect(failed.status).toBe('failed');
        expect(failed.error?.code).toBe('STATE_WRITE_FAILED');
        // The disk has the last record that fit, whole; the API has the newer one from memory.
        const onDisk = await recordOnDisk(ids.mid);
        expect(onDisk.status).toBe('creating');
        expect(await containersWithLabel(`warmstart.workspace=${ids.mid}`)).toEqual([]);
        expect(await volumeExists(`warmstart-ws-${ids.mid}`)).toBe(true);
        expect(await temporaries()).toEqual([]);
        const lines = (await readFile(eventsPath, 'utf8')).split('\n').filter(Boolean);
        for (const l of lines) expect(() => JSON.parse(l), `a torn line in the event log: ${l.slice(0, 80)}`).not.toThrow();
        const list = (await (await agent.request('/v1/workspaces')).json()) as { workspaces: { id: string; status: string }[] };
        expect(list.workspaces.find((w) => w.id === ids.mid)?.status).toBe('failed');
        const callback = await until(
          'the provisioning-failed callback',
          async () => cp.calls.find((c) => c.path === `/workspaces/${ids.mid}/provisioning-failed`),
          15_000,
        );
        expect((callback.body as { workspace: { error: { code: string } } }).workspace.error.code).toBe('STATE_WRITE_FAILED');
        expect(cp.calls.filter((c) => c.path === `/workspaces/${ids.mid}/ready`)).toEqual([]);
        const whileFull = await agentInvariants(
          agent,
          [ids.first, ids.refused, ids.mid],
          Object.values(ids).map((id) => `warmstart-ws-${id}`),
        );
        expect(agent.output()).toMatch(/could not write the workspace state; job failed/);
        // Where the disk ran out: before the dev container started, or after (then its container was removed).
        const containerRemoved = /removed the containers of a job that could not be recorded/.test(agent.output());

        await freeDisk();
        // Written on the agent's next retry (every few seconds).
        const written = await until(
          'the kept record to be written',
          async () => {
            const r = await recordOnDisk(ids.mid);
            return r.status === 'failed' ? r : null;
          },
          20_000,
          250,
        );
        expect(written.error?.code).toBe('STATE_WRITE_FAILED');
        const again = await post(agent, { id: ids.mid, repository: repo });
        expect(again.status, await again.clone().text()).toBe(202);
        const retried = await ready(agent, ids.mid);
        const final = await agentInvariants(
          agent,
          Object.values(ids),
          Object.values(ids).map((id) => `warmstart-ws-${id}`),
        );
        expect(agent.output()).not.toContain(cbToken);
        return (
          `disk filled (${filled} bytes) at up; job ${failed.status} ${failed.error?.code}${containerRemoved ? ' (its started container removed)' : ''} via the API while the disk held '${onDisk.status}' (whole); no container, volume kept, no *.tmp, ` +
          `event log whole (${lines.length} lines); provisioning-failed sent; ${whileFull}; freed: record written (${written.status}), POST again → ${retried.status}; ${final}`
        );
      },
    );
  });
});
