/**
 * Machine jobs and snapshots of a real `warmstart serve` on the testbed's
 * real LXD (incus backend), over HTTP: POST /v1/machines answers 202 while
 * the machine is still being provisioned, the job goes to `done` and its
 * events show every phase; a failing job is `failed` with a stable code; a
 * job the agent is killed in the middle of is `failed` AGENT_RESTARTED after
 * the restart; snapshots as resources under their machine, with LXD's own
 * refusals answered 404/409. Every machine is named with this run's prefix.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncusBackend } from '../../../agent/src/backends/incus.js';
import { cacheImageName } from '../../../agent/src/machines/cache.js';
import { testEnv } from '../../support/cli.js';
import { acceptedJob, followJob, PROVISIONED_MACHINE_EVENTS, shortly, waitForJob } from '../../support/jobs.js';
import { startAgent, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';
import { loadLxdTestbed, lxdRunPrefix } from '../machines/lxd-testbed.js';

const tb = loadTestbed();
const lxd = loadLxdTestbed();
const prefix = lxdRunPrefix('wsdj');
const backend = new IncusBackend({ socketPath: lxd.socket });
const keys = new Set<string>();
const agents: Agent[] = [];

const json = (body: unknown, method = 'POST'): RequestInit => ({
  method,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
const up = (name: string, script: string, over: Record<string, unknown> = {}) =>
  json({
    backend: 'incus',
    name: `${prefix}-${name}`,
    base: lxd.baseImage,
    provision: `#!/bin/sh\nset -e\n# run ${prefix}\n${script}\n`,
    files: [{ path: '/etc/tool.cfg', content: Buffer.from('setting=1\n').toString('base64') }],
    ...over,
  });
const sh = async (machine: string, cmd: string): Promise<string> => (await backend.exec(`${prefix}-${machine}`, ['sh', '-c', cmd])).stdout.trim();

let agent: Agent;

beforeAll(async () => {
  agent = await startAgent(await testEnv(tb.baseImage, { WARMSTART_INCUS_SOCKET: lxd.socket }));
  agents.push(agent);
});

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null) await a.term();
  for (const m of await backend.listMachines()) if (m.name.startsWith(`${prefix}-`)) await backend.removeMachine(m.name);
  for (const k of keys) if (await backend.imageExists(cacheImageName(k))) await backend.removeImage(cacheImageName(k));
});

describe('POST /v1/machines on real LXD: an accepted job', () => {
  it('answers 202 at once while the machine is provisioned; the job goes to done; its events show the phases as they happen', async () => {
    const t0 = performance.now();
    const res = await agent.request('/v1/machines', up('one', 'sleep 3\necho provisioned > /provisioned.txt'));
    const acceptMs = Math.round(performance.now() - t0);
    const job = await acceptedJob(res);
    expect(job).toMatchObject({
      kind: 'machine',
      status: 'running',
      request: { backend: 'incus', name: `${prefix}-one`, files: 1, provision: true },
    });
    expect(acceptMs).toBeLessThan(3_000); // the provision alone sleeps 3 s

    // Followed live: the phases arrive while the job runs, each stamped when it happened.
    const seen: Array<{ what: string; at: number }> = [];
    const { events } = await followJob(agent, job.id, { onEvent: (e) => seen.push({ what: shortly(e), at: performance.now() - t0 }) });
    expect(events.map(shortly)).toEqual(PROVISIONED_MACHINE_EVENTS);
    expect(events.map((e) => e.seq)).toEqual(events.map((_e, i) => i + 1));
    const provision = events.find((e) => e.type === 'phase-end' && e.phase === 'provision');
    expect(provision && 'ms' in provision ? provision.ms : 0).toBeGreaterThanOrEqual(3_000);
    const started = seen.find((s) => s.what === 'phase-start provision')!.at;
    const ended = seen.find((s) => s.what === 'status done')!.at;
    expect(ended - started).toBeGreaterThan(2_500); // seen as it happened, not all at the end

    const done = await waitForJob(agent, job.id);
    expect(done).toMatchObject({ status: 'done', error: null, result: { instance: `${prefix}-one`, cache: 'miss' } });
    keys.add((done.result as { key: string }).key);
    expect(await sh('one', 'cat /provisioned.txt /etc/tool.cfg')).toBe('provisioned\nsetting=1');
    // resumed after the provision's start: only what came after it
    const resumed = await followJob(agent, job.id, { after: events.find((e) => shortly(e) === 'phase-start provision')!.seq });
    expect(resumed.events.map(shortly)[0]).toBe('phase-end provision ok');
    console.log(
      `LXD machine job: 202 in ${acceptMs} ms; done after ${Math.round(ended)} ms (provision ${provision && 'ms' in provision ? provision.ms : '?'} ms)`,
    );
  });

  it('a failing job is failed with a stable code: a missing base IMAGE_NOT_FOUND, a failing script BACKEND_ERROR; no machine is left', async () => {
    const noBase = await acceptedJob(await agent.request('/v1/machines', up('nobase', 'true', { base: `${prefix}-no-such-image` })));
    const a = await waitForJob(agent, noBase.id);
    expect(a).toMatchObject({ status: 'failed', result: null, error: { code: 'IMAGE_NOT_FOUND' } });
    expect((await followJob(agent, noBase.id)).events.at(-1)).toMatchObject({ type: 'status', status: 'failed', code: 'IMAGE_NOT_FOUND' });

    const bad = await acceptedJob(await agent.request('/v1/machines', up('bad', 'echo "no network here" >&2\nexit 3')));
    const b = await waitForJob(agent, bad.id);
    expect(b).toMatchObject({ status: 'failed', error: { code: 'BACKEND_ERROR', detail: expect.stringContaining('no network here') } });
    const names = (await backend.listMachines()).map((m) => m.name);
    expect(names).not.toContain(`${prefix}-nobase`);
    expect(names).not.toContain(`${prefix}-bad`);
  });

  it('refused before anything is made: 409 for a taken name, 400 for bad input, 404 JOB_NOT_FOUND for an unknown job', async () => {
    const taken = await agent.request('/v1/machines', up('one', 'true'));
    expect(taken.status).toBe(409);
    expect(await taken.json()).toMatchObject({ code: 'BACKEND_PRECONDITION' });
    const bad = await agent.request('/v1/machines', up('Bad_Name', 'true'));
    expect(bad.status).toBe(400);
    const unknown = await agent.request('/v1/jobs/00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 'JOB_NOT_FOUND' });
  });
});

describe('/v1/machines/:name/snapshots on real LXD', () => {
  it('create 201 with Location, 409 for a name taken, list, get, restore (the file is back), delete; 404 for unknown machines and snapshots', async () => {
    const q = '?backend=incus';
    const base = `/v1/machines/${prefix}-one/snapshots`;
    await sh('one', 'echo before > /state.txt');
    const made = await agent.request(`${base}${q}`, json({ name: 'before' }));
    expect(made.status, await made.clone().text()).toBe(201);
    expect(made.headers.get('location')).toBe(`${base}/before${q}`);
    expect(await made.json()).toMatchObject({ machine: `${prefix}-one`, name: 'before', createdAt: expect.any(String) });
    // LXD itself only fails such a snapshot later, inside its operation: the agent answers 409 first.
    const again = await agent.request(`${base}${q}`, json({ name: 'before' }));
    expect(again.status).toBe(409);
    expect(await again.json()).toEqual({ code: 'BACKEND_PRECONDITION', message: `machine ${prefix}-one already has a snapshot before` });

    const list = (await (await agent.request(`${base}${q}`)).json()) as { snapshots: Array<{ name: string }> };
    expect(list.snapshots.map((s) => s.name)).toEqual(['before']);
    expect(await (await agent.request(`${base}/before${q}`)).json()).toMatchObject({ name: 'before' });

    await sh('one', 'echo after > /state.txt');
    const restored = await agent.request(`${base}/before/restore${q}`, { method: 'POST' });
    expect(restored.status, await restored.clone().text()).toBe(200);
    expect(await restored.json()).toEqual({ machine: `${prefix}-one`, name: 'before', restored: true });
    expect(await sh('one', 'cat /state.txt')).toBe('before');

    const deleted = await agent.request(`${base}/before${q}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    for (const [url, init, code] of [
      [`${base}/before${q}`, {}, 'SNAPSHOT_NOT_FOUND'],
      [`${base}/before${q}`, { method: 'DELETE' }, 'SNAPSHOT_NOT_FOUND'],
      [`${base}/before/restore${q}`, { method: 'POST' }, 'SNAPSHOT_NOT_FOUND'],
      [`/v1/machines/${prefix}-nope/snapshots${q}`, {}, 'MACHINE_NOT_FOUND'],
      [`/v1/machines/${prefix}-nope/snapshots${q}`, json({ name: 's1' }), 'MACHINE_NOT_FOUND'],
      [`/v1/machines/${prefix}-nope/snapshots/s1/restore${q}`, { method: 'POST' }, 'MACHINE_NOT_FOUND'],
    ] as const) {
      const r = await agent.request(url, init);
      expect({ url, status: r.status, code: ((await r.json()) as { code: string }).code }).toEqual({ url, status: 404, code });
    }
  });
});

describe('a machine job the agent is killed in the middle of', () => {
  it('is failed AGENT_RESTARTED after the restart, its last event saying so; the state dir kept no script', async () => {
    const res = await agent.request('/v1/machines', up('killed', 'echo secret-ish-marker >/dev/null\nsleep 120'));
    const job = await acceptedJob(res);
    // Follow until the provision is under way, then kill -9.
    const before = await followJob(agent, job.id, { until: (e) => shortly(e) === 'phase-start provision' });
    expect(before.events.map(shortly).at(-1)).toBe('phase-start provision');
    await agent.kill9();
    const again = await startAgent({}, { reuse: agent });
    agents.push(again);
    const view = await waitForJob(again, job.id, 10_000);
    expect(view).toMatchObject({ status: 'failed', error: { code: 'AGENT_RESTARTED' } });
    expect(view.error?.message).toContain(`machine ${prefix}-killed on incus`);
    const { events } = await followJob(again, job.id);
    expect(events.at(-1)).toMatchObject({ type: 'status', status: 'failed', code: 'AGENT_RESTARTED' });
    expect(events.map(shortly)).toContain('phase-start provision');
    expect(again.output()).toContain('job interrupted by an agent restart marked failed');
    // The record holds what the view shows: not the script.
    expect(await readFile(join(again.env.WARMSTART_STATE_DIR!, 'jobs', `${job.id}.json`), 'utf8')).not.toContain('secret-ish-marker');
  });
});
