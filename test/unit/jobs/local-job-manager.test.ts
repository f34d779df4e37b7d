import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readyResult } from '../../support/results.js';

/**
 * LocalJobManager around a scripted pipeline (the real one has its own
 * integration tests): which POSTs it takes, and what it does when the state
 * dir refuses a write. The disk is the real file system, except that while
 * `disk.full` is set every record write fails as a full disk makes it fail.
 */
const disk = vi.hoisted(() => ({ full: false }));
vi.mock('../../../agent/src/state/atomic-file.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../agent/src/state/atomic-file.js')>();
  const { WarmstartError } = await import('../../../agent/src/errors.js');
  return {
    writeFileAtomic: (path: string, content: string, mode?: number) =>
      disk.full
        ? Promise.reject(new WarmstartError('STATE_WRITE_FAILED', `could not write ${path}`, { detail: 'ENOSPC: no space left on device, write' }))
        : real.writeFileAtomic(path, content, mode),
  };
});
vi.mock('../../../agent/src/workspace/pipeline.js', () => ({ prepareWorkspace: vi.fn() }));

const { LocalJobManager } = await import('../../../agent/src/jobs/local-job-manager.js');
const { WorkspaceStore } = await import('../../../agent/src/state/workspace-store.js');
const { configFromEnv } = await import('../../../agent/src/config/agent-config.js');
const { WarmstartError } = await import('../../../agent/src/errors.js');
const { prepareWorkspace } = await import('../../../agent/src/workspace/pipeline.js');
type PipelineDeps = import('../../../agent/src/workspace/pipeline.js').PipelineDeps;
type Store = InstanceType<typeof WorkspaceStore>;

const REPO = 'https://example.test/acme/app.git';
const prepare = vi.mocked(prepareWorkspace);

/** What the real pipeline does to the record, in short: creating, then the outcome. */
function pipelineThatSucceeds(): void {
  prepare.mockImplementation(async (deps, req) => {
    const rec = (await deps.store.load(req.workspaceId))!;
    await deps.store.save({ ...rec, status: 'creating' });
    const result = readyResult(req.workspaceId);
    await deps.store.save({ ...rec, status: 'ready', result });
    return { result, push: Promise.resolve(result.push) };
  });
}

let dir: string;
let store: Store;
let containers: { id: string; image: string; state: string; labels: Record<string, string> }[];
let removed: string[];
/** While set, the engine's container removals wait for it: a DELETE held at work. */
let removalsHeld: Promise<void> | null;
let enqueued: { kind: string; workspaceId: string; body: unknown }[];
let jobs: InstanceType<typeof LocalJobManager>;

beforeEach(async () => {
  disk.full = false;
  prepare.mockReset();
  dir = await mkdtemp(join(tmpdir(), 'warmstart-jobs-'));
  store = new WorkspaceStore(join(dir, 'state'));
  containers = [];
  removed = [];
  removalsHeld = null;
  enqueued = [];
  const engine = {
    findContainers: async () => containers,
    removeContainer: async (id: string) => {
      await removalsHeld;
      removed.push(id);
      containers = containers.filter((c) => c.id !== id);
    },
    volumeExists: async () => false,
    removeVolume: async () => undefined,
  };
  const deps = {
    config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }),
    engine,
    store,
  } as unknown as PipelineDeps;
  const metrics = new Proxy({}, { get: () => () => undefined });
  jobs = new LocalJobManager({
    deps,
    metrics: metrics as never,
    outbox: {
      enqueue: async (r) => {
        enqueued.push({ kind: r.kind, workspaceId: r.workspaceId, body: r.body });
      },
      start: async () => undefined,
      stop: async () => undefined,
      pending: () => 0,
    },
    logger: pino({ level: 'silent' }),
    maxConcurrent: 2,
    allowLocalRepos: false,
    callbackPolicy: { origins: new Set(['http://cp.test']) },
  });
});

afterEach(async () => {
  disk.full = false;
  await jobs.drain(5_000);
  await rm(dir, { recursive: true, force: true });
});

const body = (id: string, extra: Record<string, unknown> = {}) => ({ id, repository: REPO, callback: { url: 'http://cp.test', token: 'cb-token-123456' }, ...extra });

async function settled(): Promise<void> {
  expect(await jobs.drain(5_000)).toBe(true);
}

describe('LocalJobManager: which POSTs it takes', () => {
  it('a failed workspace is prepared again (keeping createdAt); a ready one is 409; a failed one of another repository is a conflict', async () => {
    pipelineThatSucceeds();
    const createdAt = '2024-01-01T00:00:00.000Z';
    const failed = { id: 'w1', repository: REPO, configName: null, lightweight: false, status: 'failed' as const, result: null, createdAt, updatedAt: createdAt };
    await store.save({ ...failed, error: { code: 'AGENT_RESTARTED', message: 'restarted' } });
    const view = await jobs.submit(body('w1'));
    expect(view).toMatchObject({ id: 'w1', status: 'queued', createdAt, error: null });
    await settled();
    expect((await jobs.get('w1'))?.status).toBe('ready');
    await expect(jobs.submit(body('w1'))).rejects.toMatchObject({ code: 'WORKSPACE_EXISTS' });

    await store.save({ ...failed, id: 'w2', repository: 'https://example.test/acme/other.git' });
    await expect(jobs.submit(body('w2'))).rejects.toMatchObject({ code: 'WORKSPACE_CONFLICT' });
    expect((await store.load('w2'))?.status).toBe('failed');
    expect(prepare).toHaveBeenCalledTimes(1);
  });

  it('a workspace deleted without purge is prepared again on its volume; a deleted one of another repository is a conflict', async () => {
    pipelineThatSucceeds();
    await jobs.submit(body('w'));
    await settled();
    const deleted = await jobs.remove('w', { purge: false });
    expect(deleted.status).toBe('deleting');
    expect((await store.load('w'))?.status).toBe('deleting');

    const again = await jobs.submit(body('w'));
    expect(again).toMatchObject({ id: 'w', status: 'queued', error: null });
    await settled();
    expect((await jobs.get('w'))?.status).toBe('ready');
    expect(prepare).toHaveBeenCalledTimes(2);

    await jobs.remove('w', { purge: false });
    const err = await jobs.submit({ ...body('w'), repository: 'https://example.test/acme/other.git' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'WORKSPACE_CONFLICT' });
    expect(String((err as Error).message)).toContain('purge it first');
    expect((await store.load('w'))?.status).toBe('deleting');
    expect(prepare).toHaveBeenCalledTimes(2);
  });

  it('a POST while a DELETE of the same id is at work is 409, and the DELETE still ends as asked', async () => {
    pipelineThatSucceeds();
    await jobs.submit(body('w'));
    await settled();
    containers = [{ id: 'c-w', image: 'img', state: 'running', labels: { 'warmstart.workspace': 'w' } }];
    let letGo!: () => void;
    removalsHeld = new Promise<void>((r) => (letGo = r));
    const deleting = jobs.remove('w', { purge: false });
    await vi.waitFor(async () => expect((await store.load('w'))?.status).toBe('deleting'));
    await expect(jobs.submit(body('w'))).rejects.toMatchObject({ code: 'WORKSPACE_EXISTS' });
    letGo();
    expect((await deleting).status).toBe('deleting');
    expect(removed).toEqual(['c-w']);
    expect(prepare).toHaveBeenCalledTimes(1);
  });

  it('two POSTs of one id at the same moment make one job', async () => {
    pipelineThatSucceeds();
    const both = await Promise.allSettled([jobs.submit(body('w')), jobs.submit(body('w'))]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'WORKSPACE_EXISTS' });
    await settled();
    expect(prepare).toHaveBeenCalledTimes(1);
  });
});

describe('LocalJobManager when the state dir refuses writes', () => {
  it('a POST that cannot be recorded is refused with STATE_WRITE_FAILED and leaves nothing', async () => {
    pipelineThatSucceeds();
    disk.full = true;
    const err = await jobs.submit(body('w')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WarmstartError);
    expect(err).toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect(await jobs.get('w')).toBeNull();
    expect(await stat(store.dir('w')).catch(() => null)).toBeNull();
    expect(prepare).not.toHaveBeenCalled();
    expect(jobs.stats().activeWorkspaces).toEqual([]);
  });

  it('a job whose record stops fitting ends failed STATE_WRITE_FAILED (served from memory), without containers, with a callback; written once there is room', async () => {
    prepare.mockImplementation(async (deps, req) => {
      const rec = (await deps.store.load(req.workspaceId))!;
      await deps.store.save({ ...rec, status: 'creating' });
      containers = [{ id: 'c1', image: 'img', state: 'running', labels: { 'warmstart.workspace': req.workspaceId } }];
      disk.full = true; // the dev container runs; its ready record does not fit
      await deps.store.save({ ...rec, status: 'ready', result: readyResult(req.workspaceId) });
      throw new Error('unreachable');
    });
    await jobs.submit(body('w'));
    await settled();
    const view = await jobs.get('w');
    expect(view).toMatchObject({ status: 'failed', error: { code: 'STATE_WRITE_FAILED' } });
    expect(view?.error?.detail).toMatch(/ENOSPC/);
    expect((await jobs.list()).map((v) => [v.id, v.status])).toEqual([['w', 'failed']]);
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8')).status).toBe('creating');
    expect(removed).toEqual(['c1']);
    expect(enqueued).toEqual([{ kind: 'provisioning-failed', workspaceId: 'w', body: expect.objectContaining({ status: 'failed' }) }]);

    // Room again: the next POST writes the kept record first; the failed one can be posted again.
    disk.full = false;
    pipelineThatSucceeds();
    await jobs.submit(body('other'));
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8'))).toMatchObject({ status: 'failed', error: { code: 'STATE_WRITE_FAILED' } });
    await settled();
    await jobs.submit(body('w'));
    await settled();
    expect((await jobs.get('w'))?.status).toBe('ready');
  });

  it('a DELETE that cannot be recorded is refused, unless it purges', async () => {
    pipelineThatSucceeds();
    await jobs.submit(body('w'));
    await settled();
    disk.full = true;
    await expect(jobs.remove('w', { purge: false })).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect((await jobs.get('w'))?.status).toBe('ready');
    expect(removed).toEqual([]);
    containers = [{ id: 'c-w', image: 'img', state: 'running', labels: {} }];
    await jobs.remove('w', { purge: true });
    expect(removed).toEqual(['c-w']);
    expect(await jobs.get('w')).toBeNull();
  });
});

describe('LocalJobManager: who asked, and where callbacks go', () => {
  it('records the caller\'s subject as the owner at creation and keeps it when the id is prepared again', async () => {
    pipelineThatSucceeds();
    await jobs.submit(body('own'), { scope: 'workspace', owner: 'alice@example.test' });
    await settled();
    expect((await store.load('own'))?.owner).toBe('alice@example.test');
    expect(prepare.mock.calls[0]![1]).toMatchObject({ scope: 'workspace', owner: 'alice@example.test' });
    // Failed, then posted again by someone else: the first owner stays.
    const rec = (await store.load('own'))!;
    await store.save({ ...rec, status: 'failed' });
    await jobs.submit(body('own'), { scope: 'node', owner: 'mallory' });
    await settled();
    expect((await store.load('own'))?.owner).toBe('alice@example.test');
    // No caller (the static token): node scope, no owner.
    await jobs.submit(body('nobody'));
    await settled();
    expect((await store.load('nobody'))?.owner).toBeNull();
    expect(prepare.mock.calls.at(-1)![1]).toMatchObject({ scope: 'node', owner: null });
  });

  it('refuses a callback URL outside the listed origins, or with a query or fragment: 400 INVALID_CALLBACK_URL, nothing recorded', async () => {
    pipelineThatSucceeds();
    for (const url of ['http://127.0.0.1:9/cb', 'http://cp.test/#', 'http://cp.test/?x=', 'http://other.test/']) {
      const err = await jobs.submit({ ...body('cb'), callback: { url, token: 'cb-token-123456' } }).catch((e: unknown) => e);
      expect(err, url).toMatchObject({ code: 'INVALID_CALLBACK_URL', isInputError: true });
    }
    expect(await store.load('cb')).toBeNull();
    await expect(stat(store.dir('cb'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(prepare).not.toHaveBeenCalled();
  });

  it('sends the callback to <base>/workspaces/<id>/<kind>, the suffix in the path even after a trailing slash', async () => {
    pipelineThatSucceeds();
    const urls: string[] = [];
    const manager = new LocalJobManager({
      deps: { config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }), store, engine: {} } as unknown as PipelineDeps,
      metrics: new Proxy({}, { get: () => () => undefined }) as never,
      outbox: { enqueue: async (r) => void urls.push(r.url), start: async () => undefined, stop: async () => undefined, pending: () => 0 },
      logger: pino({ level: 'silent' }),
      maxConcurrent: 1,
      allowLocalRepos: false,
      callbackPolicy: { origins: new Set(['http://cp.test']) },
    });
    await manager.submit({ ...body('suffix'), callback: { url: 'http://cp.test/api/', token: 'cb-token-123456' } });
    expect(await manager.drain(5_000)).toBe(true);
    expect(urls).toEqual(['http://cp.test/api/workspaces/suffix/ready']);
  });
});
