/**
 * `/v1/machines`, `/v1/images` and their jobs (`/v1/jobs/:jobId`) in process
 * (app.inject), over the in-memory FakeBackend: a POST is checked, then
 * accepted (202, Location) and run as a job whose status and events tell
 * how it went; the one error shape; the zod validation of bodies and
 * queries; and that the jobs do what the CLI does (machineUp, cacheList).
 * Snapshots: snapshot-routes.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyRequest, LightMyRequestResponse } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobEventSchema, JobList, JobView, MachineUpResult, type JobEvent } from '../../../shared/src/api.js';
import type { BackendName, ExecResult, SnapshotBackend } from '../../../agent/src/backends/backend.js';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import type { GoldenDeps } from '../../../agent/src/images/golden.js';
import { ResourceJobs } from '../../../agent/src/jobs/resource-jobs.js';
import type { AuthOptions } from '../../../agent/src/server/auth.js';
import { requireNodeScope } from '../../../agent/src/server/routes/machines.js';
import { FakeBackend, withSnapshots } from '../machines/fake-backend.js';
import { AUTH, JSON_AUTH, testServer } from './harness.js';
import { PROVISIONED_MACHINE_EVENTS } from '../../support/jobs.js';

const BASE = 'base-image';
const SCRIPT = '#!/bin/sh\necho hi > /hi\n';

/** A Docker engine for the image routes: the calls they make on a node without golden images; anything else is a test bug. */
function emptyEngine(): DockerEngine {
  const known: Partial<DockerEngine> = { listImagesWithLabels: async () => [], inspectImage: async () => null, findContainers: async () => [] };
  return new Proxy(known as DockerEngine, {
    get: (target, prop) =>
      prop in target ? target[prop as keyof DockerEngine] : () => Promise.reject(new Error(`unexpected engine call ${String(prop)}`)),
  });
}

/** Holds the machine's launch, or its provision script, until opened: a job that is still at work. */
function hold(fake: FakeBackend, at: 'launch' | 'provision'): { open: () => void } {
  let open!: () => void;
  const held = new Promise<void>((r) => (open = r));
  if (at === 'launch') {
    const launch = fake.launch.bind(fake);
    fake.launch = async (image: string, machine: string) => {
      await held;
      return launch(image, machine);
    };
    return { open };
  }
  const exec = fake.exec.bind(fake);
  const script = Buffer.from(SCRIPT).toString('base64');
  fake.exec = async (machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> => {
    if (options.input === script) await held;
    return exec(machine, argv, options);
  };
  return { open };
}

function setup(options: { unavailable?: boolean; keepaliveMs?: number; resourceJobs?: ResourceJobs; auth?: AuthOptions } = {}) {
  const fakes = { incus: withSnapshots(new FakeBackend([BASE])), docker: new FakeBackend([BASE], 'docker') };
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
    ...(options.keepaliveMs !== undefined ? { eventsKeepaliveMs: options.keepaliveMs } : {}),
    ...(options.resourceJobs ? { resourceJobs: options.resourceJobs } : {}),
    ...(options.auth ? { auth: options.auth } : {}),
  });
  const post = (url: string, payload: unknown, headers: Record<string, string> = JSON_AUTH) =>
    server.app.inject({ method: 'POST', url, headers, payload: JSON.stringify(payload) });
  const get = (url: string, headers: Record<string, string> = AUTH) => server.app.inject({ method: 'GET', url, headers });
  const del = (url: string) => server.app.inject({ method: 'DELETE', url, headers: AUTH });
  return { ...server, fakes, asked, postLaunch, post, get, del };
}

const up = (over: Record<string, unknown> = {}) => ({
  backend: 'incus',
  name: 'dev-1',
  base: BASE,
  provision: SCRIPT,
  files: [{ path: '/etc/tool.cfg', content: Buffer.from('setting=1\n').toString('base64') }],
  ...over,
});

/** The 202 of an accepted job: the view, with Location pointing at it. */
function acceptedJob(res: LightMyRequestResponse): JobView {
  expect(res.statusCode, res.body).toBe(202);
  const view = JobView.parse(res.json());
  expect(res.headers.location).toBe(`/v1/jobs/${view.id}`);
  expect(view.status).toBe('running');
  return view;
}

/** Polls GET /v1/jobs/:id until the job is over. */
async function settled(app: FastifyInstance, id: string): Promise<JobView> {
  for (let i = 0; i < 200; i++) {
    const res = await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: AUTH });
    expect(res.statusCode, res.body).toBe(200);
    const view = JobView.parse(res.json());
    if (view.status !== 'running') return view;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${id} still running`);
}

/** The lines of a finished job's events stream, keepalive lines included. */
async function streamLines(app: FastifyInstance, id: string, query = ''): Promise<unknown[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/jobs/${id}/events${query}`, headers: AUTH });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
  return res.body
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);
}

const events = async (app: FastifyInstance, id: string, query = ''): Promise<JobEvent[]> =>
  (await streamLines(app, id, query)).map((l) => JobEventSchema.parse(l));

const shortly = (e: JobEvent): string =>
  [e.type, 'phase' in e ? e.phase : undefined, 'status' in e ? e.status : undefined].filter((x) => x !== undefined).join(' ');

describe('POST /v1/machines: an accepted job', () => {
  it('202 with the job and its Location; done with the result: miss then hit with the same key; the files and the script reach the machine; the hook runs each time', async () => {
    const { app, post, fakes, postLaunch } = setup();
    const first = acceptedJob(await post('/v1/machines', up()));
    expect(first).toMatchObject({
      kind: 'machine',
      request: { backend: 'incus', name: 'dev-1', base: BASE, snapshot: null, files: 1, provision: true },
      result: null,
      error: null,
    });
    expect(JSON.stringify(first)).not.toContain('echo hi'); // the script is not in the record
    const a = await settled(app, first.id);
    expect(a).toMatchObject({ status: 'done', error: null });
    const resultA = MachineUpResult.parse(a.result);
    if (!('key' in resultA)) throw new Error('not a cache result');
    expect(resultA).toMatchObject({ instance: 'dev-1', cache: 'miss' });
    expect(resultA.key).toMatch(/^[0-9a-f]{64}$/);
    const execs = fakes.incus.calls.filter((c) => c.op === 'exec');
    // the file, the script, then the git probe for the cache image's properties (no input)
    expect(execs.map((c) => c.input)).toEqual([Buffer.from('setting=1\n').toString('base64'), Buffer.from(SCRIPT).toString('base64'), undefined]);
    expect(execs[0]?.argv).toContain('/etc/tool.cfg');

    const second = await settled(app, acceptedJob(await post('/v1/machines', up({ name: 'dev-2' }))).id);
    expect(second.result).toMatchObject({ instance: 'dev-2', cache: 'hit', key: resultA.key });
    expect(fakes.incus.calls.filter((c) => c.op === 'launch').map((c) => c.image)).toEqual([BASE, `warmstart-cache-${resultA.key.slice(0, 16)}`]);
    expect(postLaunch).toEqual(['dev-1:miss', 'dev-2:hit']);
  });

  it('its events: status running, every phase with its time, the cache note, status done last; numbered from 1; ?after= resumes', async () => {
    const { app, post } = setup();
    const job = acceptedJob(await post('/v1/machines', up()));
    await settled(app, job.id);
    const all = await events(app, job.id);
    expect(all.map(shortly)).toEqual(PROVISIONED_MACHINE_EVENTS);
    expect(all.map((e) => e.seq)).toEqual(all.map((_e, i) => i + 1));
    expect(all.every((e) => e.jobId === job.id)).toBe(true);
    expect(all.find((e) => e.type === 'note')).toMatchObject({ text: expect.stringMatching(/^cache miss: provisioning from base-image/) });
    expect((await events(app, job.id, '?after=13')).map(shortly)).toEqual(['phase-end post-launch ok', 'status done']);
    expect(await events(app, job.id, `?after=${all.length}`)).toEqual([]);
  });

  it('answers 202 while the machine is still being provisioned; the stream follows the job to its end, with keepalive lines while it is quiet', async () => {
    const { app, post, fakes } = setup({ keepaliveMs: 20 });
    const gate = hold(fakes.incus, 'provision');
    const t0 = performance.now();
    const job = acceptedJob(await post('/v1/machines', up()));
    const acceptMs = performance.now() - t0;
    expect(acceptMs).toBeLessThan(1_000);
    const following = streamLines(app, job.id); // inject resolves once the stream ends
    await new Promise((r) => setTimeout(r, 150));
    expect((await app.inject({ method: 'GET', url: `/v1/jobs/${job.id}`, headers: AUTH })).json()).toMatchObject({ status: 'running' });
    gate.open();
    const lines = await following;
    const keepalives = lines.filter((l) => (l as { type: string }).type === 'keepalive');
    expect(keepalives.length).toBeGreaterThanOrEqual(2);
    for (const k of keepalives) expect(k).toEqual({ type: 'keepalive' });
    const real = lines.filter((l) => (l as { type: string }).type !== 'keepalive').map((l) => JobEventSchema.parse(l));
    expect(real.at(-1)).toMatchObject({ type: 'status', status: 'done' });
    // the keepalives came while the provision ran: after its start, before its end
    const types = lines.map((l) => {
      const e = l as { type: string; phase?: string };
      return e.phase ? `${e.type} ${e.phase}` : e.type;
    });
    const firstKeepalive = types.indexOf('keepalive');
    expect(firstKeepalive).toBeGreaterThan(types.indexOf('phase-start provision'));
    expect(firstKeepalive).toBeLessThan(types.indexOf('phase-end provision'));
    console.log(`POST /v1/machines answered 202 in ${acceptMs.toFixed(1)} ms with the provision still held`);
  });

  it('a failing job is failed with a stable code: a missing base is IMAGE_NOT_FOUND, a failing script BACKEND_ERROR with its output; nothing is left', async () => {
    const { app, post, fakes } = setup();
    const noBase = await settled(app, acceptedJob(await post('/v1/machines', up({ name: 'dev-9', base: 'nope' }))).id);
    expect(noBase).toMatchObject({ status: 'failed', result: null, error: { code: 'IMAGE_NOT_FOUND', message: 'no image nope' } });
    expect((await events(app, noBase.id)).slice(-3).map(shortly)).toEqual(['phase-start launch', 'phase-end launch failed', 'status failed']);
    expect((await events(app, noBase.id)).at(-1)).toMatchObject({ code: 'IMAGE_NOT_FOUND', text: 'no image nope' });

    fakes.incus.onExec = (_m, argv) =>
      argv.join(' ').includes('sh "$f"') ? { exitCode: 3, stdout: '', stderr: 'apt-get: no network\n' } : { exitCode: 0, stdout: '', stderr: '' };
    const script = await settled(app, acceptedJob(await post('/v1/machines', up({ name: 'dev-8' }))).id);
    expect(script).toMatchObject({ status: 'failed', error: { code: 'BACKEND_ERROR', detail: 'apt-get: no network' } });
    expect(fakes.incus.machines.has('dev-8')).toBe(false); // the half-made machine went, as on the CLI
  });

  it('with a snapshot: boot (provisioned, snapshot taken), then restore; a machine without that snapshot 409 before anything; docker 501; no post-launch hook', async () => {
    const { app, post, fakes, postLaunch, asked } = setup();
    const boot = await settled(app, acceptedJob(await post('/v1/machines', up({ snapshot: 'warm' }))).id);
    expect(boot.request).toMatchObject({ snapshot: 'warm' });
    expect(MachineUpResult.parse(boot.result)).toMatchObject({ instance: 'dev-1', snapshot: 'warm', path: 'boot', from: 'image' });
    expect((await events(app, boot.id)).map(shortly).filter((s) => s.startsWith('phase-end'))).toEqual([
      'phase-end launch ok',
      'phase-end files ok',
      'phase-end provision ok',
      'phase-end snapshot ok',
    ]);
    expect((await fakes.incus.listSnapshots('dev-1')).map((x) => x.name)).toEqual(['warm']);

    const restore = await settled(app, acceptedJob(await post('/v1/machines', up({ snapshot: 'warm' }))).id);
    expect(restore.result).toMatchObject({ path: 'restore', snapshot: 'warm', restoreToReadyMs: expect.any(Number) });
    expect(fakes.incus.restored).toEqual(['dev-1/warm']);

    const other = await post('/v1/machines', up({ snapshot: 'other' }));
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: 'BACKEND_PRECONDITION', message: 'machine dev-1 exists but has no snapshot other' });
    const docker = await post('/v1/machines', up({ backend: 'docker', snapshot: 'warm' }));
    expect(docker.statusCode).toBe(501);
    expect(docker.json().code).toBe('BACKEND_UNSUPPORTED');
    expect(fakes.docker.calls).toEqual([]);
    expect(postLaunch).toEqual([]);
    expect((await post('/v1/machines', up({ name: 'dev-2', snapshot: 'bad name!' }))).statusCode).toBe(400);
    expect(asked.length).toBeGreaterThan(0);
  });

  it('409 BACKEND_PRECONDITION before accepting: a name taken, and a second job for the machine while the first runs', async () => {
    const { app, post, fakes } = setup();
    await settled(app, acceptedJob(await post('/v1/machines', up())).id);
    const taken = await post('/v1/machines', up());
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toEqual({
      code: 'BACKEND_PRECONDITION',
      message: 'machine dev-1 already exists on incus: remove it or choose another name',
    });

    const gate = hold(fakes.incus, 'launch');
    const running = acceptedJob(await post('/v1/machines', up({ name: 'dev-2' })));
    const twice = await post('/v1/machines', up({ name: 'dev-2' }));
    expect(twice.statusCode).toBe(409);
    expect(twice.json().message).toBe(`job ${running.id} is at work on machine dev-2 on incus: wait for it to end`);
    gate.open();
    expect((await settled(app, running.id)).status).toBe('done');
  });

  it('400 listing every field error, and for a file listed twice: before any backend is asked, nothing made', async () => {
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
    const content = Buffer.from('x').toString('base64');
    const twice = await post(
      '/v1/machines',
      up({
        files: [
          { path: '/etc/a', content },
          { path: '/etc//a', content },
        ],
      }),
    );
    expect(twice.statusCode).toBe(400);
    expect(twice.json()).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'file destination listed twice: /etc/a' });
    expect(asked).toEqual([]);
  });

  it('takes machine names just inside the rule and refuses those just outside', async () => {
    const { post } = setup();
    const status = async (name: string) => (await post('/v1/machines', up({ name, provision: undefined, files: [] }))).statusCode;
    expect(await status('a')).toBe(202);
    expect(await status(`a${'b'.repeat(62)}`)).toBe(202);
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

  it('503 BACKEND_UNAVAILABLE when the backend cannot be reached; 503 SHUTTING_DOWN once the agent stops accepting; no job either way', async () => {
    const resourceJobs = new ResourceJobs({ store: null, logger: pino({ enabled: false }) });
    const down = setup({ unavailable: true, resourceJobs });
    const res = await down.post('/v1/machines', up());
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ code: 'BACKEND_UNAVAILABLE', message: 'incus is not reachable' });
    const s = setup();
    s.jobs.stopAccepting();
    const closing = await s.post('/v1/machines', up());
    expect(closing.statusCode).toBe(503);
    expect(closing.json().code).toBe('SHUTTING_DOWN');
    expect(resourceJobs.running()).toBe(0);
  });

  it('takes a body larger than the API default (a provision script over 64 KiB)', async () => {
    const { post } = setup();
    const res = await post('/v1/machines', up({ provision: `#!/bin/sh\n# ${'x'.repeat(100 * 1024)}\n` }));
    expect(res.statusCode).toBe(202);
  });
});

describe('GET /v1/jobs/:jobId', () => {
  it('404 JOB_NOT_FOUND for an unknown job, 400 for an id that is not one, 400 INVALID_ARGUMENT for a bad after', async () => {
    const { app, get, post } = setup();
    const unknown = await get('/v1/jobs/00000000-0000-4000-8000-000000000000');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ code: 'JOB_NOT_FOUND', message: 'no job 00000000-0000-4000-8000-000000000000 on this node' });
    expect((await get('/v1/jobs/00000000-0000-4000-8000-000000000000/events')).json().code).toBe('JOB_NOT_FOUND');
    const bad = await get('/v1/jobs/not-a-job');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().validations).toEqual([{ field: 'jobId', message: expect.any(String) }]);
    const job = acceptedJob(await post('/v1/machines', up()));
    await settled(app, job.id);
    for (const after of ['-1', 'x', '1.5']) {
      const res = await get(`/v1/jobs/${job.id}/events?after=${after}`);
      expect(res.statusCode, after).toBe(400);
      expect(res.json().code).toBe('INVALID_ARGUMENT');
    }
    expect((await get(`/v1/jobs/${job.id}`, {})).statusCode).toBe(401);
  });

  describe('who sees a job (JWTs against a key set on loopback)', () => {
    const AUDIENCE = 'warmstart-test';
    const ISSUER = 'https://cp.test';
    let key: CryptoKey;
    let jwks: Server;
    let jwksUrl: string;
    beforeAll(async () => {
      const pair = await generateKeyPair('RS256', { extractable: true });
      key = pair.privateKey;
      const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
      jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
      await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
      jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    });
    afterAll(() => new Promise<void>((r) => jwks.close(() => r())));
    const bearer = async (claims: Record<string, unknown>): Promise<Record<string, string>> => ({
      authorization: `Bearer ${await new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setSubject('someone')
        .setAudience(AUDIENCE)
        .setIssuer(ISSUER)
        .setExpirationTime('5m')
        .sign(key)}`,
    });

    it('node-wide tokens see every job; a workspace-scoped one only the image jobs of its workspace, any other is 404', async () => {
      const resourceJobs = new ResourceJobs({ store: null, logger: pino({ enabled: false }) });
      const s = setup({ resourceJobs, auth: { mode: 'bearer', jwt: { jwksUrl, audience: AUDIENCE, issuer: ISSUER } } });
      const image = await resourceJobs.submit({
        kind: 'image',
        target: 'image warmstart-golden/ws-a-base:latest',
        request: { workspaceId: 'ws-a', name: 'ws-a-base', tag: 'latest', push: false, withWorkspace: false },
        run: () => new Promise(() => undefined),
      });
      const machine = await resourceJobs.submit({
        kind: 'machine',
        target: 'machine m on incus',
        request: { backend: 'incus', name: 'm', base: BASE, snapshot: null, files: 0, provision: false },
        run: () => new Promise(() => undefined),
      });
      const node = await bearer({});
      const wsA = await bearer({ workspace: 'ws-a' });
      const wsB = await bearer({ workspace: 'ws-b' });
      const status = async (url: string, headers: Record<string, string>) => (await s.get(url, headers)).statusCode;
      expect(await status(`/v1/jobs/${image.id}`, node)).toBe(200);
      expect(await status(`/v1/jobs/${machine.id}`, node)).toBe(200);
      expect(await status(`/v1/jobs/${image.id}`, wsA)).toBe(200);
      expect(await status(`/v1/jobs/${machine.id}`, wsA)).toBe(404);
      expect(await status(`/v1/jobs/${machine.id}/events`, wsA)).toBe(404);
      const other = await s.get(`/v1/jobs/${image.id}`, wsB);
      expect(other.statusCode).toBe(404);
      expect(other.json().code).toBe('JOB_NOT_FOUND');
      // The list holds what each may see.
      const ids = async (headers: Record<string, string>) => {
        const r = await s.get('/v1/jobs', headers);
        expect(r.statusCode).toBe(200);
        return JobList.parse(r.json()).jobs.map((j) => j.id);
      };
      expect((await ids(node)).sort()).toEqual([image.id, machine.id].sort());
      expect(await ids(wsA)).toEqual([image.id]);
      expect(await ids(wsB)).toEqual([]);
      expect((await s.get('/v1/jobs', {})).statusCode).toBe(401);
      // machines themselves stay node-wide
      expect((await s.post('/v1/machines', up(), { ...wsA, 'content-type': 'application/json' })).statusCode).toBe(403);
    });
  });
});

describe('GET /v1/machines, GET /v1/machines/cache, DELETE /v1/machines/:name', () => {
  it('lists machines and cached images of the backend asked for, and removes a machine (404 the second time)', async () => {
    const { app, post, get, del, asked } = setup();
    const a = MachineUpResult.parse((await settled(app, acceptedJob(await post('/v1/machines', up())).id)).result);
    if (!('key' in a)) throw new Error('not a cache result');
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

describe('/v1/images', () => {
  it('lists none, 404 IMAGE_NOT_FOUND on delete; a POST is refused before any job: 400 from the naming rules, 404 for a workspace with no container', async () => {
    const resourceJobs = new ResourceJobs({ store: null, logger: pino({ enabled: false }) });
    const { post, get, del } = setup({ resourceJobs });
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
    expect(resourceJobs.running()).toBe(0);
    expect(resourceJobs.get('any')).toBeNull();
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
    for (const url of ['/v1/machines?backend=incus', '/v1/jobs/00000000-0000-4000-8000-000000000000']) {
      const res = await app.inject({ method: 'GET', url, headers: AUTH });
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('NOT_FOUND');
    }
  });
});
