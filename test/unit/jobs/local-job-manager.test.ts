import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { LocalJobManager } from '../../../agent/src/jobs/local-job-manager.js';
import { outboxNotifier } from '../../../agent/src/jobs/notifier.js';
import type { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import type { Pipeline, PipelineDeps } from '../../../agent/src/workspace/pipeline.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { readyResult } from '../../support/results.js';
import { fillableStore } from '../workspace/lifecycle-disk.js';

/**
 * LocalJobManager around a scripted pipeline, given to it as a function (the
 * real one has its own integration tests): which POSTs it takes, and what it
 * does when the state dir refuses a write. The disk is the real file system,
 * except that while `disk.full` is set every record write fails as a full
 * disk makes it fail (test/unit/workspace/lifecycle-disk.ts). No module is mocked.
 */
const disk = { full: false };

const REPO = 'https://example.test/acme/app.git';
const prepare = vi.fn<Pipeline>();

/** What the real pipeline does, in short: records the start through the hook, then the outcome. */
function pipelineThatSucceeds(push?: Promise<PushResult>): void {
  prepare.mockImplementation(async (deps, req, _sink, options) => {
    await options?.record?.started(planJob(req, deps.config));
    const result = readyResult(req.workspaceId);
    if (push) result.push = { status: 'pending', ref: 'reg.test/acme/app:cache', reason: null, ms: null };
    await options?.record?.settled(result);
    return { result, push: push ?? Promise.resolve(result.push) };
  });
}

let dir: string;
let store: WorkspaceStore;
let containers: { id: string; image: string; state: string; labels: Record<string, string> }[];
let removed: string[];
/** While set, the engine's container removals wait for it: a DELETE held at work. */
let removalsHeld: Promise<void> | null;
let enqueued: { kind: string; workspaceId: string; body: unknown }[];
let jobs: LocalJobManager;
/** what the manager logged at level error */
let logged: { msg: string; workspaceId?: string }[];

beforeEach(async () => {
  disk.full = false;
  prepare.mockReset();
  dir = await mkdtemp(join(tmpdir(), 'warmstart-jobs-'));
  store = fillableStore(join(dir, 'state'), disk);
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
  logged = [];
  jobs = new LocalJobManager({
    deps,
    pipeline: prepare,
    metrics: metrics as never,
    notifier: outboxNotifier(
      {
        enqueue: async (r) => {
          enqueued.push({ kind: r.kind, workspaceId: r.workspaceId, body: r.body });
        },
        start: async () => undefined,
        stop: async () => undefined,
        pending: () => 0,
      },
      { origins: new Set(['http://cp.test']) },
    ),
    logger: pino({ level: 'error' }, { write: (line: string) => void logged.push(JSON.parse(line) as { msg: string; workspaceId?: string }) }),
    maxConcurrent: 2,
    allowLocalRepos: false,
  });
});

afterEach(async () => {
  disk.full = false;
  await jobs.drain(5_000);
  await rm(dir, { recursive: true, force: true });
});

const body = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  repository: REPO,
  callback: { url: 'http://cp.test', token: 'cb-token-123456' },
  ...extra,
});

async function settled(): Promise<void> {
  expect(await jobs.drain(5_000)).toBe(true);
}

describe('LocalJobManager: which POSTs it takes', () => {
  it('a failed workspace is prepared again (keeping createdAt); a ready one is 409 for another body; a failed one of another repository is a conflict', async () => {
    pipelineThatSucceeds();
    const createdAt = '2024-01-01T00:00:00.000Z';
    const failed = {
      id: 'w1',
      repository: REPO,
      configName: null,
      lightweight: false,
      status: 'failed' as const,
      result: null,
      createdAt,
      updatedAt: createdAt,
    };
    await store.save({ ...failed, error: { code: 'AGENT_RESTARTED', message: 'restarted' } });
    const view = await jobs.submit(body('w1'));
    expect(view).toMatchObject({ id: 'w1', status: 'queued', createdAt, error: null });
    await settled();
    expect((await jobs.get('w1'))?.status).toBe('ready');
    await expect(jobs.submit(body('w1', { lightweight: true }))).rejects.toMatchObject({ code: 'WORKSPACE_EXISTS' });

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

  it('two POSTs of one id at the same moment make one job (the other is answered with it, or 409 while it is being recorded)', async () => {
    pipelineThatSucceeds();
    const both = await Promise.allSettled([jobs.submit(body('w')), jobs.submit(body('w', { lightweight: true }))]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'WORKSPACE_EXISTS' });
    const twins = await Promise.allSettled([jobs.submit(body('t')), jobs.submit(body('t'))]);
    const answers = twins.map((r) =>
      r.status === 'fulfilled' ? ('existing' in r.value ? 'existing' : 'queued') : (r.reason as WarmstartError).code,
    );
    expect(answers).toContain('queued');
    expect(['existing', 'WORKSPACE_EXISTS']).toContain(answers.find((a) => a !== 'queued'));
    await settled();
    expect(prepare).toHaveBeenCalledTimes(2);
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
    prepare.mockImplementation(async (deps, req, _sink, options) => {
      await options?.record?.started(planJob(req, deps.config));
      containers = [{ id: 'c1', image: 'img', state: 'running', labels: { 'warmstart.workspace': req.workspaceId } }];
      disk.full = true; // the dev container runs; its ready record does not fit
      await options?.record?.settled(readyResult(req.workspaceId));
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
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8'))).toMatchObject({
      status: 'failed',
      error: { code: 'STATE_WRITE_FAILED' },
    });
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
  it("records the caller's subject as the owner at creation and keeps it when the id is prepared again", async () => {
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
      deps: {
        config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }),
        store,
        engine: {},
      } as unknown as PipelineDeps,
      pipeline: prepare,
      metrics: new Proxy({}, { get: () => () => undefined }) as never,
      notifier: outboxNotifier(
        { enqueue: async (r) => void urls.push(r.url), start: async () => undefined, stop: async () => undefined, pending: () => 0 },
        { origins: new Set(['http://cp.test']) },
      ),
      logger: pino({ level: 'silent' }),
      maxConcurrent: 1,
      allowLocalRepos: false,
    });
    await manager.submit({ ...body('suffix'), callback: { url: 'http://cp.test/api/', token: 'cb-token-123456' } });
    expect(await manager.drain(5_000)).toBe(true);
    expect(urls).toEqual(['http://cp.test/api/workspaces/suffix/ready']);
  });
});

describe('LocalJobManager: the push after ready, and a DELETE during a job', () => {
  it('the record ends with the push result', async () => {
    let settlePush!: (p: PushResult) => void;
    pipelineThatSucceeds(new Promise<PushResult>((r) => (settlePush = r)));
    await jobs.submit(body('w'));
    await vi.waitFor(async () => expect((await store.load('w'))?.result?.push.status).toBe('pending'));
    expect(jobs.stats().pushing).toBe(1);
    settlePush({ status: 'pushed', ref: 'reg.test/acme/app:cache', reason: null, ms: 12 });
    await settled();
    expect((await store.load('w'))?.result?.push).toEqual({ status: 'pushed', ref: 'reg.test/acme/app:cache', reason: null, ms: 12 });
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8'))).toMatchObject({
      status: 'ready',
      result: { push: { status: 'pushed' } },
    });
    expect(logged).toEqual([]);
  });

  it('a push result that cannot be written is logged and served from memory; the disk keeps the rest until there is room', async () => {
    let settlePush!: (p: PushResult) => void;
    pipelineThatSucceeds(new Promise<PushResult>((r) => (settlePush = r)));
    await jobs.submit(body('w'));
    await vi.waitFor(async () => expect((await store.load('w'))?.result?.push.status).toBe('pending'));
    disk.full = true;
    settlePush({ status: 'pushed', ref: 'reg.test/acme/app:cache', reason: null, ms: 12 });
    await settled();
    expect(logged).toEqual([expect.objectContaining({ workspaceId: 'w', msg: 'could not write the workspace record; kept in memory, will retry' })]);
    expect((await jobs.get('w'))?.push?.status).toBe('pushed');
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8'))).toMatchObject({
      status: 'ready',
      result: { push: { status: 'pending' } },
    });

    disk.full = false;
    pipelineThatSucceeds();
    await jobs.submit(body('other')); // a POST writes what is kept first
    expect(JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8'))).toMatchObject({
      status: 'ready',
      result: { push: { status: 'pushed' } },
    });
  });

  it('a DELETE while the job runs stops it unrecorded: the record ends deleting, no callback, and the id can be posted again', async () => {
    prepare.mockImplementation(async (deps, req, _sink, options) => {
      await options?.record?.started(planJob(req, deps.config));
      await new Promise((r) => options?.signal?.addEventListener('abort', r, { once: true }));
      const result: WorkspaceResult = {
        ...readyResult(req.workspaceId),
        outcome: 'failed',
        containerId: null,
        error: { code: 'JOB_CANCELLED', message: 'the job was cancelled' },
        push: { status: 'skipped', ref: null, reason: 'workspace failed', ms: null },
      };
      await options?.record?.settled(result);
      return { result, push: Promise.resolve(result.push) };
    });
    await jobs.submit(body('w'));
    await vi.waitFor(async () => expect((await store.load('w'))?.status).toBe('creating'));
    const last = await jobs.remove('w', { purge: false });
    expect(last.status).toBe('deleting');
    expect(await store.load('w')).toMatchObject({ status: 'deleting', result: null });
    expect(enqueued).toEqual([]);
    expect(logged).toEqual([]);
    pipelineThatSucceeds();
    expect(await jobs.submit(body('w'))).toMatchObject({ status: 'queued' });
    await settled();
    expect((await jobs.get('w'))?.status).toBe('ready');
  });
});
