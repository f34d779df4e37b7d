/**
 * `/v1/machines`, `/v1/snapshots`, `/v1/images` in process (app.inject),
 * over the in-memory FakeBackend: status codes, the one error shape, the
 * zod validation of bodies and queries, and that the routes do what the CLI
 * does (machineUp, cacheList, the backend's snapshot operations).
 */
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { MachineUpResult } from '../../../shared/src/api.js';
import type { BackendName, SnapshotBackend, StateSnapshot } from '../../../agent/src/backends/backend.js';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import type { GoldenDeps } from '../../../agent/src/images/golden.js';
import { requireNodeScope } from '../../../agent/src/server/routes/machines.js';
import { FakeBackend } from '../machines/fake-backend.js';
import { AUTH, JSON_AUTH, testServer } from './harness.js';

const BASE = 'base-image';

/** A machine-up answer through the layer cache (not a snapshot): the kind with a key. */
function cacheUp(body: unknown): Extract<MachineUpResult, { key: string }> {
  const r = MachineUpResult.parse(body);
  if (!('key' in r)) throw new Error(`not a cache result: ${JSON.stringify(r)}`);
  return r;
}

/** The fake given state snapshots, refusing what the real backends refuse. */
function withSnapshots(fake: FakeBackend): FakeBackend & { restored: string[] } {
  const snaps = new Map<string, StateSnapshot>();
  const restored: string[] = [];
  const known = (machine: string): void => {
    if (!fake.machines.has(machine)) throw new WarmstartError('MACHINE_NOT_FOUND', `no machine ${machine}`);
  };
  const b: SnapshotBackend = fake;
  b.snapshot = async (machine, name) => {
    known(machine);
    if (snaps.has(`${machine}/${name}`)) throw new WarmstartError('BACKEND_PRECONDITION', `snapshot ${name} exists`);
    const s = { machine, name, createdAt: '2026-01-01T00:00:00.000Z' };
    snaps.set(`${machine}/${name}`, s);
    return s;
  };
  b.restore = async (machine, name) => {
    known(machine);
    if (!snaps.has(`${machine}/${name}`)) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of ${machine}`);
    restored.push(`${machine}/${name}`);
  };
  b.listSnapshots = async (machine) => {
    known(machine);
    return [...snaps.values()].filter((s) => s.machine === machine);
  };
  b.deleteSnapshot = async (machine, name) => {
    known(machine);
    if (!snaps.delete(`${machine}/${name}`)) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of ${machine}`);
  };
  return Object.assign(fake, { restored });
}

/** A Docker engine for the image routes: the calls they make on a node without golden images; anything else is a test bug. */
function emptyEngine(): DockerEngine {
  const known: Partial<DockerEngine> = { listImagesWithLabels: async () => [], inspectImage: async () => null, findContainers: async () => [] };
  return new Proxy(known as DockerEngine, {
    get: (target, prop) =>
      prop in target ? target[prop as keyof DockerEngine] : () => Promise.reject(new Error(`unexpected engine call ${String(prop)}`)),
  });
}

function setup(options: { unavailable?: boolean } = {}) {
  const fakes = { incus: withSnapshots(new FakeBackend([BASE])), docker: new FakeBackend([BASE]) };
  const asked: BackendName[] = [];
  const postLaunch: string[] = [];
  const backends = async (name: BackendName): Promise<SnapshotBackend> => {
    asked.push(name);
    if (options.unavailable) throw new WarmstartError('BACKEND_UNAVAILABLE', `${name} is not reachable`);
    if (name === 'incus' || name === 'docker') return fakes[name];
    throw new WarmstartError('BACKEND_UNAVAILABLE', `${name} is not installed here`);
  };
  const images = { engine: emptyEngine() } as unknown as GoldenDeps;
  const server = testServer({
    machines: { backends, postLaunch: async (ctx) => void postLaunch.push(`${ctx.instance}:${ctx.cache}`) },
    images,
  });
  const post = (url: string, payload: unknown, headers: Record<string, string> = JSON_AUTH) =>
    server.app.inject({ method: 'POST', url, headers, payload: JSON.stringify(payload) });
  const get = (url: string) => server.app.inject({ method: 'GET', url, headers: AUTH });
  const del = (url: string) => server.app.inject({ method: 'DELETE', url, headers: AUTH });
  return { ...server, fakes, asked, postLaunch, post, get, del };
}

const up = (over: Record<string, unknown> = {}) => ({
  backend: 'incus',
  name: 'dev-1',
  base: BASE,
  provision: '#!/bin/sh\necho hi > /hi\n',
  files: [{ path: '/etc/tool.cfg', content: Buffer.from('setting=1\n').toString('base64') }],
  ...over,
});

describe('POST /v1/machines', () => {
  it('201 miss then 201 hit with the same key; the files and the script reach the machine; the hook runs each time', async () => {
    const { post, fakes, postLaunch } = setup();
    const first = await post('/v1/machines', up());
    expect(first.statusCode).toBe(201);
    const a = cacheUp(first.json());
    expect(a).toMatchObject({ instance: 'dev-1', cache: 'miss' });
    expect(a.key).toMatch(/^[0-9a-f]{64}$/);
    const execs = fakes.incus.calls.filter((c) => c.op === 'exec');
    // the file, the script, then the git probe for the cache image's properties (no input)
    expect(execs.map((c) => c.input)).toEqual([
      Buffer.from('setting=1\n').toString('base64'),
      Buffer.from('#!/bin/sh\necho hi > /hi\n').toString('base64'),
      undefined,
    ]);
    expect(execs[2]?.op === 'exec' && execs[2].argv.join(' ')).toContain('command -v git');
    expect(execs[0]?.argv).toContain('/etc/tool.cfg');

    const second = await post('/v1/machines', up({ name: 'dev-2' }));
    expect(second.statusCode).toBe(201);
    expect(second.json()).toMatchObject({ instance: 'dev-2', cache: 'hit', key: a.key });
    expect(fakes.incus.calls.filter((c) => c.op === 'launch').map((c) => c.image)).toEqual([BASE, `warmstart-cache-${a.key.slice(0, 16)}`]);
    expect(postLaunch).toEqual(['dev-1:miss', 'dev-2:hit']);

    const changed = await post('/v1/machines', up({ name: 'dev-3', provision: '#!/bin/sh\necho hi  > /hi\n' }));
    expect(changed.json()).toMatchObject({ cache: 'miss' });
    expect(changed.json().key).not.toBe(a.key);
  });

  it('with a snapshot: 201 boot (provisioned, snapshot taken), then 201 restore; 409 for a machine without that snapshot; no post-launch hook', async () => {
    const { post, fakes, postLaunch } = setup();
    const first = await post('/v1/machines', up({ snapshot: 'warm' }));
    expect(first.statusCode, first.body).toBe(201);
    expect(MachineUpResult.parse(first.json())).toMatchObject({ instance: 'dev-1', snapshot: 'warm', path: 'boot', from: 'image' });
    // the file and the script reached the machine, launched from the base (no cache image made)
    expect(fakes.incus.calls.filter((c) => c.op === 'exec').map((c) => c.input)).toEqual([
      Buffer.from('setting=1\n').toString('base64'),
      Buffer.from('#!/bin/sh\necho hi > /hi\n').toString('base64'),
    ]);
    expect(fakes.incus.calls.filter((c) => c.op === 'launch' || c.op === 'capture').map((c) => c.op)).toEqual(['launch']);
    expect((await fakes.incus.listSnapshots('dev-1')).map((x) => x.name)).toEqual(['warm']);

    const again = await post('/v1/machines', up({ snapshot: 'warm' }));
    expect(again.statusCode, again.body).toBe(201);
    const restored = MachineUpResult.parse(again.json());
    expect(restored).toMatchObject({ path: 'restore', snapshot: 'warm' });
    expect(typeof (restored as { restoreToReadyMs?: number }).restoreToReadyMs).toBe('number');
    expect(fakes.incus.restored).toEqual(['dev-1/warm']);

    const other = await post('/v1/machines', up({ snapshot: 'other' }));
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: 'BACKEND_PRECONDITION' });
    expect(postLaunch).toEqual([]);
    expect((await post('/v1/machines', up({ name: 'dev-2', snapshot: 'bad name!' }))).statusCode).toBe(400);
  });

  it('409 BACKEND_PRECONDITION for a name taken, 404 IMAGE_NOT_FOUND for a missing base, in the one error shape', async () => {
    const { post } = setup();
    expect((await post('/v1/machines', up())).statusCode).toBe(201);
    const taken = await post('/v1/machines', up());
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toEqual({ code: 'BACKEND_PRECONDITION', message: 'machine dev-1 exists' });
    const noBase = await post('/v1/machines', up({ name: 'dev-9', base: 'nope' }));
    expect(noBase.statusCode).toBe(404);
    expect(noBase.json()).toEqual({ code: 'IMAGE_NOT_FOUND', message: 'no image nope' });
  });

  it('400 listing every field error: backend, name, file path and content, unknown fields; the backend is never asked', async () => {
    const { post, asked } = setup();
    const res = await post('/v1/machines', {
      backend: 'vmware',
      name: 'Dev_1',
      base: '',
      files: [{ path: 'etc/x', content: 'not base64!' }],
      extra: 1,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('INVALID_REQUEST');
    const fields = res
      .json()
      .validations.map((v: { field: string }) => v.field)
      .sort();
    expect(fields).toEqual(['backend', 'base', 'extra', 'files.0.content', 'files.0.path', 'name']);
    expect(asked).toEqual([]);
  });

  it('takes machine names just inside the rule and refuses those just outside', async () => {
    const { post } = setup();
    const status = async (name: string) => (await post('/v1/machines', up({ name, provision: undefined, files: [] }))).statusCode;
    expect(await status('a')).toBe(201);
    expect(await status(`a${'b'.repeat(62)}`)).toBe(201);
    expect(await status(`a${'b'.repeat(63)}`)).toBe(400);
    expect(await status('1abc')).toBe(400);
    expect(await status('-abc')).toBe(400);
    expect(await status('abc.d')).toBe(400);
  });

  it('401 without a token and 415 without JSON, before the backend is asked', async () => {
    const { app, asked } = setup();
    const noAuth = await app.inject({
      method: 'POST',
      url: '/v1/machines',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(up()),
    });
    expect(noAuth.statusCode).toBe(401);
    expect(noAuth.json().code).toBe('UNAUTHENTICATED');
    const text = await app.inject({ method: 'POST', url: '/v1/machines', headers: { ...AUTH, 'content-type': 'text/plain' }, payload: 'x' });
    expect(text.statusCode).toBe(415);
    expect(asked).toEqual([]);
  });

  it('503 BACKEND_UNAVAILABLE when the backend cannot be reached; 503 SHUTTING_DOWN once the agent stops accepting', async () => {
    const down = setup({ unavailable: true });
    const res = await down.post('/v1/machines', up());
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ code: 'BACKEND_UNAVAILABLE', message: 'incus is not reachable' });
    const s = setup();
    s.jobs.stopAccepting();
    const closing = await s.post('/v1/machines', up());
    expect(closing.statusCode).toBe(503);
    expect(closing.json().code).toBe('SHUTTING_DOWN');
  });

  it('takes a body larger than the API default (a provision script over 64 KiB)', async () => {
    const { post } = setup();
    const res = await post('/v1/machines', up({ provision: `#!/bin/sh\n# ${'x'.repeat(100 * 1024)}\n` }));
    expect(res.statusCode).toBe(201);
  });
});

describe('GET /v1/machines, GET /v1/machines/cache, DELETE /v1/machines/:name', () => {
  it('lists machines and cached images of the backend asked for, and removes a machine (404 the second time)', async () => {
    const { post, get, del, asked } = setup();
    const a = cacheUp((await post('/v1/machines', up())).json());
    const list = await get('/v1/machines?backend=incus');
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual({ machines: [{ name: 'dev-1', state: 'running' }] });
    expect((await get('/v1/machines?backend=docker')).json()).toEqual({ machines: [] });

    const cache = await get('/v1/machines/cache?backend=incus');
    expect(cache.statusCode).toBe(200);
    expect(cache.json().images.map((i: { name: string }) => i.name)).toEqual([`warmstart-cache-${a.key.slice(0, 16)}`]);

    const gone = await del('/v1/machines/dev-1?backend=incus');
    expect(gone.statusCode).toBe(200);
    expect(gone.json()).toEqual({ machine: 'dev-1', deleted: true });
    const again = await del('/v1/machines/dev-1?backend=incus');
    expect(again.statusCode).toBe(404);
    expect(again.json()).toEqual({ code: 'MACHINE_NOT_FOUND', message: 'no machine dev-1' });
    expect(asked).toContain('docker');
  });

  it('400 for a missing or unknown backend, and for a name outside the rule', async () => {
    const { get, del } = setup();
    const none = await get('/v1/machines');
    expect(none.statusCode).toBe(400);
    expect(none.json().validations).toEqual([{ field: 'backend', message: expect.any(String) }]);
    expect((await get('/v1/machines/cache?backend=qemu')).statusCode).toBe(400);
    const bad = await del('/v1/machines/Bad_Name?backend=incus');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().validations).toEqual([{ field: 'name', message: expect.any(String) }]);
  });
});

describe('/v1/snapshots', () => {
  it('create 201, list, restore 200, delete 200, then 404 SNAPSHOT_NOT_FOUND', async () => {
    const { post, get, del, fakes } = setup();
    await post('/v1/machines', up());
    const made = await post('/v1/snapshots', { backend: 'incus', machine: 'dev-1', name: 'before' });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toEqual({ machine: 'dev-1', name: 'before', createdAt: '2026-01-01T00:00:00.000Z' });
    expect((await post('/v1/snapshots', { backend: 'incus', machine: 'dev-1', name: 'before' })).statusCode).toBe(409);

    const list = await get('/v1/snapshots?backend=incus&machine=dev-1');
    expect(list.statusCode).toBe(200);
    expect(list.json().snapshots.map((s: { name: string }) => s.name)).toEqual(['before']);

    const restored = await post('/v1/snapshots/restore', { backend: 'incus', machine: 'dev-1', name: 'before' });
    expect(restored.statusCode).toBe(200);
    expect(restored.json()).toEqual({ machine: 'dev-1', name: 'before', restored: true });
    expect(fakes.incus.restored).toEqual(['dev-1/before']);

    const deleted = await del('/v1/snapshots?backend=incus&machine=dev-1&name=before');
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toEqual({ machine: 'dev-1', name: 'before', deleted: true });
    const missing = await post('/v1/snapshots/restore', { backend: 'incus', machine: 'dev-1', name: 'before' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ code: 'SNAPSHOT_NOT_FOUND', message: 'no snapshot before of dev-1' });
    expect((await get('/v1/snapshots?backend=incus&machine=nope')).json().code).toBe('MACHINE_NOT_FOUND');
  });

  it('501 BACKEND_UNSUPPORTED from a backend without snapshots, for every operation', async () => {
    const { post, get, del } = setup();
    const body = { backend: 'docker', machine: 'dev-1', name: 's1' };
    for (const res of [
      await post('/v1/snapshots', body),
      await post('/v1/snapshots/restore', body),
      await get('/v1/snapshots?backend=docker&machine=dev-1'),
      await del('/v1/snapshots?backend=docker&machine=dev-1&name=s1'),
    ]) {
      expect(res.statusCode).toBe(501);
      expect(res.json()).toEqual({ code: 'BACKEND_UNSUPPORTED', message: 'the fake has no snapshots' });
    }
  });

  it('400 for an unknown field, a bad snapshot name, a missing query parameter', async () => {
    const { post, get, del } = setup();
    const res = await post('/v1/snapshots', { backend: 'incus', machine: 'dev-1', name: 'Snap!', force: true });
    expect(res.statusCode).toBe(400);
    expect(
      res
        .json()
        .validations.map((v: { field: string; message: string }) => v.field)
        .sort(),
    ).toEqual(['force', 'name']);
    expect((await get('/v1/snapshots?backend=incus')).json().validations).toEqual([{ field: 'machine', message: expect.any(String) }]);
    expect((await del('/v1/snapshots?backend=incus&machine=dev-1')).statusCode).toBe(400);
  });
});

describe('/v1/images', () => {
  it('lists none, 404 IMAGE_NOT_FOUND on delete, 400 from the naming rules before the engine is asked', async () => {
    const { post, get, del } = setup();
    expect((await get('/v1/images')).json()).toEqual({ images: [] });
    const gone = await del('/v1/images/base?tag=v1');
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toEqual({ code: 'IMAGE_NOT_FOUND', message: 'no golden image base:v1 on this node' });
    const badName = await post('/v1/images', { workspaceId: 'ws-1', name: 'A' });
    expect(badName.statusCode).toBe(400);
    expect(badName.json().code).toBe('INVALID_IMAGE_NAME');
    const noWorkspace = await post('/v1/images', { workspaceId: 'ws-1', name: 'golden-one' });
    expect(noWorkspace.statusCode).toBe(404);
    expect(noWorkspace.json().code).toBe('WORKSPACE_NOT_FOUND');
  });

  it('400 for unknown fields and wrong types', async () => {
    const { post } = setup();
    const res = await post('/v1/images', { workspaceId: 'ws-1', name: 'golden-one', push: 'yes', password: 'x' });
    expect(res.statusCode).toBe(400);
    expect(
      res
        .json()
        .validations.map((v: { field: string }) => v.field)
        .sort(),
    ).toEqual(['password', 'push']);
  });
});

describe('scope', () => {
  it('a JWT scoped to a workspace may not touch machines, snapshots or images', async () => {
    const scoped = { principal: { kind: 'jwt', workspace: 'ws-1' } } as unknown as FastifyRequest;
    await expect(requireNodeScope(scoped)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(requireNodeScope({ principal: { kind: 'jwt' } } as unknown as FastifyRequest)).resolves.toBeUndefined();
    await expect(requireNodeScope({ principal: { kind: 'token' } } as unknown as FastifyRequest)).resolves.toBeUndefined();
  });

  it('the routes exist only when the server is given backends and the agent', async () => {
    const { app } = testServer();
    const res = await app.inject({ method: 'GET', url: '/v1/machines?backend=incus', headers: AUTH });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('NOT_FOUND');
  });
});
