import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readyResult } from '../../support/results.js';

/**
 * Prebuilds share the node's build slots with workspace jobs
 * (LocalJobManager.buildSlot), around a scripted pipeline: the slots, not
 * the builds, are under test here.
 */
vi.mock('../../../agent/src/workspace/pipeline.js', () => ({ prepareWorkspace: vi.fn() }));

const { LocalJobManager } = await import('../../../agent/src/jobs/local-job-manager.js');
const { WorkspaceStore } = await import('../../../agent/src/state/workspace-store.js');
const { configFromEnv } = await import('../../../agent/src/config/agent-config.js');
const { prepareWorkspace } = await import('../../../agent/src/workspace/pipeline.js');
type PipelineDeps = import('../../../agent/src/workspace/pipeline.js').PipelineDeps;

const prepare = vi.mocked(prepareWorkspace);
let dir: string;
let jobs: InstanceType<typeof LocalJobManager>;
/** resolves the running workspace job */
let finishJob: () => void;

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

beforeEach(async () => {
  prepare.mockReset();
  prepare.mockImplementation(async (deps, req) => {
    await new Promise<void>((r) => (finishJob = r));
    const rec = (await deps.store.load(req.workspaceId))!;
    const res = readyResult(req.workspaceId);
    await deps.store.save({ ...rec, status: 'ready', result: res });
    return { result: res, push: Promise.resolve(res.push) };
  });
  dir = await mkdtemp(join(tmpdir(), 'warmstart-slots-'));
  const deps = {
    config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }),
    store: new WorkspaceStore(join(dir, 'state')),
  } as unknown as PipelineDeps;
  jobs = new LocalJobManager({
    deps,
    metrics: new Proxy({}, { get: () => () => undefined }) as never,
    outbox: { enqueue: async () => undefined, start: async () => undefined, stop: async () => undefined, pending: () => 0 },
    logger: pino({ level: 'silent' }),
    maxConcurrent: 1,
    allowLocalRepos: false,
  });
});

afterEach(async () => {
  await jobs.drain(5_000);
  await rm(dir, { recursive: true, force: true });
});

describe('LocalJobManager.buildSlot', () => {
  it('holds a prebuild until a slot is free; a queued workspace job goes first', async () => {
    const freeA = await jobs.buildSlot(new AbortController().signal);
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 0 });

    await jobs.submit({ id: 'w1', repository: 'https://example.test/acme/app.git' });
    let bGranted: (() => void) | null = null;
    void jobs.buildSlot(new AbortController().signal).then((free) => (bGranted = free));
    await tick();
    expect(prepare).not.toHaveBeenCalled();
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 2 });

    freeA();
    freeA(); // a second call frees nothing more
    await tick();
    expect(prepare).toHaveBeenCalledTimes(1); // the workspace job took the slot
    expect(bGranted).toBeNull();
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 1 });

    finishJob();
    await tick();
    expect(bGranted).toBeTypeOf('function');
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 0 });
    bGranted!();
    expect(jobs.stats()).toMatchObject({ running: 0, queued: 0 });
  });

  it('a wait that is cancelled rejects with JOB_CANCELLED and takes no slot', async () => {
    const free = await jobs.buildSlot(new AbortController().signal);
    const controller = new AbortController();
    const waiting = jobs.buildSlot(controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 0 });
    free();
    expect(jobs.stats().running).toBe(0);
    const aborted = new AbortController();
    aborted.abort();
    await expect(jobs.buildSlot(aborted.signal)).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    expect(jobs.stats().running).toBe(0);
  });
});
