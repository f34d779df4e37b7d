import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CreateWorkspaceBody } from '../../../shared/src/api.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import type { WarmstartError } from '../../../agent/src/errors.js';
import type { WorkspaceEvent } from '../../../agent/src/events/events.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import type { EventsOptions } from '../../../agent/src/jobs/job-manager.js';
import { LocalJobManager } from '../../../agent/src/jobs/local-job-manager.js';
import { outboxNotifier } from '../../../agent/src/jobs/notifier.js';
import { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import type { Pipeline, PipelineDeps } from '../../../agent/src/workspace/pipeline.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { readyResult } from '../../support/results.js';

/**
 * LocalJobManager over a real WorkspaceStore on disk, with a scripted
 * pipeline that emits events as the real one does (PhaseRecorder): which
 * POSTs are repeats (workspace/idempotency.ts), that records keep digests
 * and no secret, and that event numbers (events/event-seq.ts) go on across
 * runs of an id and a restart of the agent, so `after` resumes exactly.
 */

const REPO = 'https://example.test/acme/app.git';
const SECRETS = { gitToken: 'ghs_gitTokenBytes0123456789', password: 'registry-password-bytes-42', callback: 'callback-token-bytes-77' };

let dir: string;
let store: WorkspaceStore;
/** While set, a job waits here after it is recorded as started. */
let hold: Promise<void> | null;
/** Lines each job logs, one phase per run. */
let linesPerRun: string[];

const prepare = vi.fn<Pipeline>(async (deps, req, sink, options) => {
  const rec = new PhaseRecorder(req.workspaceId, sink, undefined, new Map());
  await options?.record?.started(planJob(req, deps.config));
  await rec.phase('clone', async () => {
    // One chunk of several lines, as the CLI's output comes: an event per line, each numbered.
    rec.log(linesPerRun.join('\n'), 'clone');
    await hold;
  });
  const result = readyResult(req.workspaceId);
  rec.outcome('ready', 1);
  await options?.record?.settled(result);
  return { result, push: Promise.resolve(result.push) };
});

function manager(): LocalJobManager {
  const deps = {
    config: configFromEnv({ WARMSTART_STATE_DIR: join(dir, 'state'), WARMSTART_RUNTIME_DIR: join(dir, 'run') }),
    engine: {
      findContainers: async () => [],
      removeContainer: async () => undefined,
      volumeExists: async () => true,
      removeVolume: async () => undefined,
    },
    store,
  } as unknown as PipelineDeps;
  return new LocalJobManager({
    deps,
    pipeline: prepare,
    metrics: new Proxy({}, { get: () => () => undefined }) as never,
    notifier: outboxNotifier(
      { enqueue: async () => undefined, start: async () => undefined, stop: async () => undefined, pending: () => 0 },
      { origins: new Set(['http://cp.test']) },
    ),
    logger: pino({ level: 'silent' }),
    maxConcurrent: 1,
    allowLocalRepos: false,
  });
}

let jobs: LocalJobManager;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-repeat-'));
  store = new WorkspaceStore(join(dir, 'state'));
  hold = null;
  linesPerRun = ['one', 'two'];
  prepare.mockClear();
  jobs = manager();
});

afterEach(async () => {
  await jobs.drain(5_000);
  await rm(dir, { recursive: true, force: true });
});

const body = (id: string, extra: Partial<CreateWorkspaceBody> = {}): CreateWorkspaceBody => ({
  id,
  repository: REPO,
  gitToken: SECRETS.gitToken,
  cache: { registry: 'reg.test', username: 'bot', password: SECRETS.password },
  callback: { url: 'http://cp.test', token: SECRETS.callback },
  ...extra,
});

async function collect(events: AsyncIterable<WorkspaceEvent>, count = Infinity): Promise<WorkspaceEvent[]> {
  const out: WorkspaceEvent[] = [];
  for await (const e of events) {
    out.push(e);
    if (out.length >= count) break;
  }
  return out;
}

const eventsOf = (m: LocalJobManager, id: string, options: EventsOptions = {}, count = Infinity) =>
  collect(m.events(id, new AbortController().signal, options), count);

async function filesUnder(path: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    const p = join(path, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

describe('a repeated POST, against records on disk', () => {
  it('is answered with the workspace while queued, creating and ready, from the same requester only; the job runs once', async () => {
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    await jobs.submit(body('busy'), undefined, { requester: 'token' }); // takes the one build slot
    await vi.waitFor(async () => expect((await store.load('busy'))?.status).toBe('creating'));
    expect(await jobs.submit(body('w'), undefined, { requester: 'token' })).toMatchObject({ status: 'queued' });

    expect(await jobs.submit(body('w'), undefined, { requester: 'token' })).toMatchObject({ id: 'w', status: 'queued', existing: true });
    expect(await jobs.submit(body('busy'), undefined, { requester: 'token' })).toMatchObject({ status: 'creating', existing: true });
    // Another caller, the same body: not theirs.
    await expect(jobs.submit(body('w'), undefined, { requester: 'jwt ["mallory",null]' })).rejects.toMatchObject({ code: 'WORKSPACE_EXISTS' });
    release();
    await jobs.drain(5_000);
    expect((await store.load('w'))?.status).toBe('ready');
    const ready = await jobs.submit(body('w'), undefined, { requester: 'token' });
    expect(ready).toMatchObject({ status: 'ready', existing: true });
    // Key order does not matter, nor a freshly minted token; another setting does.
    const reordered = Object.fromEntries(Object.entries(body('w')).reverse()) as CreateWorkspaceBody;
    expect(await jobs.submit(reordered, undefined, { requester: 'token' })).toMatchObject({ existing: true });
    expect(await jobs.submit(body('w', { gitToken: 'ghs_another' }), undefined, { requester: 'token' })).toMatchObject({ existing: true });
    await expect(jobs.submit(body('w', { noPush: true }), undefined, { requester: 'token' })).rejects.toMatchObject({
      code: 'WORKSPACE_EXISTS',
    });
    expect(prepare).toHaveBeenCalledTimes(2);

    // After a restart the records still answer.
    const restarted = manager();
    expect(await restarted.submit(body('w'), undefined, { requester: 'token' })).toMatchObject({ status: 'ready', existing: true });
    expect(prepare).toHaveBeenCalledTimes(2);
  });

  it('Idempotency-Key: the same key answers even a failed workspace; another body or id is 422; a key at work is 409', async () => {
    const keyed = { requester: 'token', idempotencyKey: 'key-1' };
    await jobs.submit(body('w'), undefined, keyed);
    await jobs.drain(5_000);
    const rec = (await store.load('w'))!;
    await store.save({ ...rec, status: 'failed' });
    expect(await jobs.submit(body('w'), undefined, keyed)).toMatchObject({ status: 'failed', existing: true });
    await expect(jobs.submit(body('w', { noPush: true }), undefined, keyed)).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    await expect(jobs.submit(body('w2'), undefined, keyed)).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await store.load('w2')).toBeNull();
    // Another caller's key of the same text is its own.
    expect(await jobs.submit(body('w2'), undefined, { requester: 'jwt ["bob",null]', idempotencyKey: 'key-1' })).toMatchObject({ status: 'queued' });
    await jobs.drain(5_000);

    // Without a key the failed workspace is prepared again.
    expect(await jobs.submit(body('w'), undefined, { requester: 'token' })).toMatchObject({ status: 'queued' });
    await jobs.drain(5_000);

    // Two requests with one key at once: the second is told the first is at work.
    const both = await Promise.allSettled([
      jobs.submit(body('w3'), undefined, { requester: 'token', idempotencyKey: 'key-3' }),
      jobs.submit(body('w3'), undefined, { requester: 'token', idempotencyKey: 'key-3' }),
    ]);
    expect(both[0]).toMatchObject({ status: 'fulfilled', value: { status: 'queued' } });
    expect((both[1] as PromiseRejectedResult).reason as WarmstartError).toMatchObject({ code: 'IDEMPOTENCY_KEY_IN_USE' });
    expect(prepare).toHaveBeenCalledTimes(4);
  });

  it('the record keeps SHA-256 digests of the request: no byte of its secrets, or of the key, anywhere under the state dir', async () => {
    await jobs.submit(body('w'), undefined, { requester: 'token', idempotencyKey: 'the-key-text-1234' });
    await jobs.drain(5_000);
    const record = JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8')) as { request: { body: string; key: string } };
    expect(record.request).toEqual({ body: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), key: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    const files = await filesUnder(join(dir, 'state'));
    expect(files.length).toBeGreaterThanOrEqual(2); // the record and the event log at least
    for (const file of files) {
      const bytes = await readFile(file);
      for (const secret of [...Object.values(SECRETS), 'the-key-text-1234']) {
        expect(bytes.includes(Buffer.from(secret)), `${secret} in ${file}`).toBe(false);
      }
    }
  });
});

describe('event numbers across runs of an id and a restart', () => {
  it('go on from the last one the log holds; after= gives exactly the rest, from the log and from the running job', async () => {
    await jobs.submit(body('w'));
    await jobs.drain(5_000);
    const first = await eventsOf(jobs, 'w');
    // phase-start, one event per log line, phase-end, outcome
    expect(first.map((e) => e.type)).toEqual(['phase-start', 'log', 'log', 'phase-end', 'outcome']);
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);

    // The agent restarts; the id is prepared again (deleted without purge, posted again).
    const restarted = manager();
    await restarted.remove('w', { purge: false });
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    linesPerRun = ['three'];
    await restarted.submit(body('w'));
    await vi.waitFor(async () => expect((await store.load('w'))?.status).toBe('creating'));

    // While it runs: without after, its own events; with after, the earlier run's rest first.
    expect((await eventsOf(restarted, 'w', {}, 2)).map((e) => e.seq)).toEqual([6, 7]);
    expect((await eventsOf(restarted, 'w', { after: 3 }, 4)).map((e) => e.seq)).toEqual([4, 5, 6, 7]);
    expect((await eventsOf(restarted, 'w', { after: 6 }, 1)).map((e) => e.seq)).toEqual([7]);

    // A follower that read up to 6, gone and back with after=6, gets the rest as it happens.
    const resumed = eventsOf(restarted, 'w', { after: 6 });
    release();
    await restarted.drain(5_000);
    const rest = await resumed;
    expect(rest.map((e) => e.seq)).toEqual([7, 8, 9]);
    expect(rest.map((e) => e.type)).toEqual(['log', 'phase-end', 'outcome']);

    // Once over, everything from the log, every number once, in order.
    const all = await eventsOf(restarted, 'w');
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await eventsOf(restarted, 'w', { after: 7 })).map((e) => e.seq)).toEqual([8, 9]);
    expect(await eventsOf(restarted, 'w', { after: 9 })).toEqual([]);

    // A purge ends the workspace and its count: the next one of that id starts at 1.
    await restarted.remove('w', { purge: true });
    linesPerRun = [];
    hold = null;
    await restarted.submit(body('w'));
    await restarted.drain(5_000);
    expect((await eventsOf(restarted, 'w')).map((e) => e.seq)[0]).toBe(1);
  });
});
