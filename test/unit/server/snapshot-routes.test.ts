/**
 * Snapshots as resources under their machine,
 * `/v1/machines/:name/snapshots[/:snapshot[/restore]]?backend=`, in process:
 * over the in-memory FakeBackend for the whole cycle, and over the real Lima
 * and cloud-hypervisor backend code driving their fakes (test/fakes/), which
 * refuse what the real tools refuse: 404 for an unknown machine or snapshot,
 * 409 for a state the backend refuses, 501 where there are no snapshots. The
 * deprecated `/v1/snapshots` routes still answer, saying so.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackendName, SnapshotBackend } from '../../../agent/src/backends/backend.js';
import { LimaBackend } from '../../../agent/src/backends/lima.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { chTestbed, type ChTestbed } from '../../fakes/cloud-hypervisor/testbed.js';
import { fakeLima, FAKE_LIMACTL, type FakeLima } from '../../fakes/lima/harness.js';
import { FakeBackend, withSnapshots } from '../machines/fake-backend.js';
import { AUTH, JSON_AUTH, testServer } from './harness.js';

vi.setConfig({ testTimeout: 30_000 });

function serve(backends: Partial<Record<BackendName, SnapshotBackend>>) {
  const asked: BackendName[] = [];
  const { app } = testServer({
    machines: {
      backends: async (name) => {
        asked.push(name);
        const b = backends[name];
        if (!b) throw new WarmstartError('BACKEND_UNAVAILABLE', `${name} is not installed here`);
        return b;
      },
    },
  });
  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({
      method,
      url,
      headers: payload === undefined ? AUTH : JSON_AUTH,
      ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
    });
  return { app, asked, call };
}

const answer = (res: { statusCode: number; json: () => unknown }) => ({ status: res.statusCode, body: res.json() });

describe('/v1/machines/:name/snapshots over the in-memory fake', () => {
  it('create 201 with Location, list, get, restore, delete; then 404 SNAPSHOT_NOT_FOUND; 404 MACHINE_NOT_FOUND for an unknown machine', async () => {
    const fake = withSnapshots(new FakeBackend(['base']));
    await fake.launch('base', 'dev-1');
    const { call } = serve({ incus: fake });
    const base = '/v1/machines/dev-1/snapshots';

    const made = await call('POST', `${base}?backend=incus`, { name: 'before' });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toEqual({ machine: 'dev-1', name: 'before', createdAt: '2026-01-01T00:00:00.000Z' });
    expect(made.headers.location).toBe('/v1/machines/dev-1/snapshots/before?backend=incus');
    expect(answer(await call('POST', `${base}?backend=incus`, { name: 'before' }))).toEqual({
      status: 409,
      body: { code: 'BACKEND_PRECONDITION', message: 'machine dev-1 already has a snapshot before' },
    });

    expect(answer(await call('GET', `${base}?backend=incus`))).toEqual({
      status: 200,
      body: { snapshots: [{ machine: 'dev-1', name: 'before', createdAt: '2026-01-01T00:00:00.000Z' }] },
    });
    expect(answer(await call('GET', `${base}/before?backend=incus`)).body).toEqual({
      machine: 'dev-1',
      name: 'before',
      createdAt: '2026-01-01T00:00:00.000Z',
    });

    const restored = await call('POST', `${base}/before/restore?backend=incus`);
    expect(answer(restored)).toEqual({ status: 200, body: { machine: 'dev-1', name: 'before', restored: true } });
    expect(fake.restored).toEqual(['dev-1/before']);

    expect(answer(await call('DELETE', `${base}/before?backend=incus`))).toEqual({
      status: 200,
      body: { machine: 'dev-1', name: 'before', deleted: true },
    });
    for (const res of [
      await call('GET', `${base}/before?backend=incus`),
      await call('DELETE', `${base}/before?backend=incus`),
      await call('POST', `${base}/before/restore?backend=incus`),
    ]) {
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('SNAPSHOT_NOT_FOUND');
    }
    for (const res of [
      await call('POST', '/v1/machines/nope/snapshots?backend=incus', { name: 's1' }),
      await call('GET', '/v1/machines/nope/snapshots?backend=incus'),
      await call('GET', '/v1/machines/nope/snapshots/s1?backend=incus'),
      await call('POST', '/v1/machines/nope/snapshots/s1/restore?backend=incus'),
      await call('DELETE', '/v1/machines/nope/snapshots/s1?backend=incus'),
    ]) {
      expect(answer(res)).toEqual({ status: 404, body: { code: 'MACHINE_NOT_FOUND', message: 'no machine nope' } });
    }
  });

  it('a machine named like the cache route still has its snapshots', async () => {
    const fake = withSnapshots(new FakeBackend(['base']));
    await fake.launch('base', 'cache');
    const { call } = serve({ incus: fake });
    expect((await call('POST', '/v1/machines/cache/snapshots?backend=incus', { name: 's1' })).statusCode).toBe(201);
    expect((await call('GET', '/v1/machines/cache/snapshots/s1?backend=incus')).statusCode).toBe(200);
  });

  it('501 BACKEND_UNSUPPORTED from a backend without snapshots, for every operation', async () => {
    const docker = new FakeBackend(['base'], 'docker');
    await docker.launch('base', 'dev-1');
    const { call } = serve({ docker });
    for (const res of [
      await call('POST', '/v1/machines/dev-1/snapshots?backend=docker', { name: 's1' }),
      await call('GET', '/v1/machines/dev-1/snapshots?backend=docker'),
      await call('GET', '/v1/machines/dev-1/snapshots/s1?backend=docker'),
      await call('POST', '/v1/machines/dev-1/snapshots/s1/restore?backend=docker'),
      await call('DELETE', '/v1/machines/dev-1/snapshots/s1?backend=docker'),
    ]) {
      expect(answer(res)).toEqual({ status: 501, body: { code: 'BACKEND_UNSUPPORTED', message: 'the fake has no snapshots' } });
    }
  });

  it('400 before the backend is asked: unknown fields, a bad name in the path or the body, no backend, a restore body with fields', async () => {
    const { call, asked } = serve({});
    const res = await call('POST', '/v1/machines/dev-1/snapshots?backend=incus', { name: 'Snap!', force: true });
    expect(res.statusCode).toBe(400);
    expect(
      res
        .json()
        .validations.map((v: { field: string }) => v.field)
        .sort(),
    ).toEqual(['force', 'name']);
    expect((await call('GET', '/v1/machines/dev-1/snapshots/Bad_Name?backend=incus')).json().validations).toEqual([
      { field: 'snapshot', message: expect.any(String) },
    ]);
    expect((await call('GET', '/v1/machines/dev-1/snapshots')).json().validations).toEqual([{ field: 'backend', message: expect.any(String) }]);
    expect((await call('POST', '/v1/machines/dev-1/snapshots/s1/restore?backend=incus', { at: 'now' })).statusCode).toBe(400);
    expect((await call('POST', '/v1/machines/Dev/snapshots/s1/restore?backend=incus')).statusCode).toBe(400);
    expect(asked).toEqual([]);
  });

  it('the deprecated /v1/snapshots routes still answer, with a Deprecation header', async () => {
    const fake = withSnapshots(new FakeBackend(['base']));
    await fake.launch('base', 'dev-1');
    const { call } = serve({ incus: fake });
    const body = { backend: 'incus', machine: 'dev-1', name: 'old' };
    const made = await call('POST', '/v1/snapshots', body);
    expect(made.statusCode).toBe(201);
    expect(made.headers.deprecation).toBe('true');
    expect((await call('POST', '/v1/snapshots', body)).statusCode).toBe(409);
    const list = await call('GET', '/v1/snapshots?backend=incus&machine=dev-1');
    expect(list.json().snapshots.map((s: { name: string }) => s.name)).toEqual(['old']);
    expect(list.headers.deprecation).toBe('true');
    expect(answer(await call('POST', '/v1/snapshots/restore', body)).body).toEqual({ machine: 'dev-1', name: 'old', restored: true });
    expect((await call('DELETE', '/v1/snapshots?backend=incus&machine=dev-1&name=old')).statusCode).toBe(200);
    expect((await call('DELETE', '/v1/snapshots?backend=incus&machine=dev-1&name=old')).json().code).toBe('SNAPSHOT_NOT_FOUND');
  });
});

describe('over the real backend code and its fakes', () => {
  let ch: ChTestbed | undefined;
  let lima: FakeLima | undefined;
  afterEach(async () => {
    await ch?.close();
    await lima?.cleanup();
    ch = undefined;
    lima = undefined;
  });

  it('cloud-hypervisor: the cycle works; 409 for a VM that is not running (as cloud-hypervisor refuses it); 404s', async () => {
    ch = await chTestbed();
    const backend = ch.backend();
    await backend.launch('base', 'm1');
    const { call } = serve({ 'cloud-hypervisor': backend });
    const q = '?backend=cloud-hypervisor';
    const made = await call('POST', `/v1/machines/m1/snapshots${q}`, { name: 's1' });
    expect(made.statusCode, made.body).toBe(201);
    expect(made.json()).toMatchObject({ machine: 'm1', name: 's1' });
    expect((await call('GET', `/v1/machines/m1/snapshots${q}`)).json().snapshots.map((s: { name: string }) => s.name)).toEqual(['s1']);
    expect((await call('POST', `/v1/machines/m1/snapshots${q}`, { name: 's1' })).statusCode).toBe(409);
    const restored = await call('POST', `/v1/machines/m1/snapshots/s1/restore${q}`);
    expect(restored.statusCode, restored.body).toBe(200);
    expect((await call('POST', `/v1/machines/m1/snapshots/s2/restore${q}`)).json().code).toBe('SNAPSHOT_NOT_FOUND');
    expect((await call('GET', `/v1/machines/m9/snapshots${q}`)).statusCode).toBe(404);

    await backend.api('m1').shutdown(); // the VM is gone from the VMM: cloud-hypervisor cannot snapshot it
    const stopped = await call('POST', `/v1/machines/m1/snapshots${q}`, { name: 's2' });
    expect(stopped.statusCode, stopped.body).toBe(409);
    expect(stopped.json()).toMatchObject({
      code: 'BACKEND_PRECONDITION',
      message: expect.stringMatching(/only a running or paused VM can be snapshotted/),
    });
    expect((await call('DELETE', `/v1/machines/m1/snapshots/s1${q}`)).statusCode).toBe(200);
    expect((await call('DELETE', `/v1/machines/m1/snapshots/s1${q}`)).json().code).toBe('SNAPSHOT_NOT_FOUND');
  });

  it('lima: the cycle works on a qemu instance; a vz instance is 501 (limactl has no snapshots there); 404s', async () => {
    lima = await fakeLima();
    await lima.makeBase('base');
    await lima.makeBase('onvz', { vmType: 'vz' });
    const backend = new LimaBackend({ limactl: FAKE_LIMACTL, limaHome: lima.home, env: lima.env });
    await backend.launch('base', 'm1');
    const { call } = serve({ lima: backend });
    const q = '?backend=lima';
    const made = await call('POST', `/v1/machines/m1/snapshots${q}`, { name: 's1' });
    expect(made.statusCode, made.body).toBe(201);
    expect((await call('POST', `/v1/machines/m1/snapshots${q}`, { name: 's1' })).statusCode).toBe(409);
    expect((await call('GET', `/v1/machines/m1/snapshots/s1${q}`)).json()).toMatchObject({ machine: 'm1', name: 's1' });
    expect((await call('POST', `/v1/machines/m1/snapshots/s1/restore${q}`)).statusCode).toBe(200);
    expect((await call('POST', `/v1/machines/m1/snapshots/s9/restore${q}`)).json().code).toBe('SNAPSHOT_NOT_FOUND');
    expect((await call('GET', `/v1/machines/m9/snapshots${q}`)).json().code).toBe('MACHINE_NOT_FOUND');
    const vz = await call('POST', `/v1/machines/onvz/snapshots${q}`, { name: 's1' });
    expect(vz.statusCode).toBe(501);
    expect(vz.json()).toMatchObject({ code: 'BACKEND_UNSUPPORTED', message: expect.stringContaining('qemu instances only') });
    expect((await call('DELETE', `/v1/machines/m1/snapshots/s1${q}`)).statusCode).toBe(200);
  });
});
