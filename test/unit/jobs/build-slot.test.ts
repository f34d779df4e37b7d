import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { LocalJobManager } from '../../../agent/src/jobs/local-job-manager.js';
import { outboxNotifier } from '../../../agent/src/jobs/notifier.js';
import { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import type { Pipeline, PipelineDeps } from '../../../agent/src/workspace/pipeline.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { readyResult } from '../../support/results.js';

/**
 * Prebuilds share the node's build slots with workspace jobs
 * (LocalJobManager.buildSlot, jobs/job-queue.ts), around a scripted pipeline
 * given to the manager as a function: the slots, not the builds, are under test here.
 */
const prepare = vi.fn<Pipeline>();
let dir: string;
let jobs: LocalJobManager;
/** resolves the running workspace job */
let finishJob: () => void;

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

beforeEach(async () => {
  prepare.mockReset();
  finishJob = undefined as unknown as () => void;
  prepare.mockImplementation(async (deps, req, _sink, options) => {
    await options?.record?.started(planJob(req, deps.config));
    await new Promise<void>((r) => (finishJob = r));
    const res = readyResult(req.workspaceId);
    await options?.record?.settled(res);
    return { result: res, push: Promise.resolve(res.push) };
  });
  dir = await mkdtemp(join(tmpdir(), 'warmstart-slots-'));
  const deps = {
    config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }),
    store: new WorkspaceStore(join(dir, 'state')),
  } as unknown as PipelineDeps;
  jobs = new LocalJobManager({
    deps,
    pipeline: prepare,
    metrics: new Proxy({}, { get: () => () => undefined }) as never,
    notifier: outboxNotifier({ enqueue: async () => undefined, start: async () => undefined, stop: async () => undefined, pending: () => 0 }),
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
    await vi.waitFor(() => expect(finishJob).toBeTypeOf('function')); // the workspace job took the slot and is building
    expect(prepare).toHaveBeenCalledTimes(1);
    expect(bGranted).toBeNull();
    expect(jobs.stats()).toMatchObject({ running: 1, queued: 1 });

    finishJob();
    await vi.waitFor(() => expect(bGranted).toBeTypeOf('function')); // after the job's result is recorded
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
