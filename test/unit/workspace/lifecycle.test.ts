import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import type { WorkspaceRecord, WorkspaceStatus, WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import { IllegalTransition, WorkspaceLifecycle, type From, type Transition, type WorkspaceSpec } from '../../../agent/src/workspace/lifecycle.js';
import { readyResult } from '../../support/results.js';
import { fillableStore, type Disk } from './lifecycle-disk.js';

/**
 * The one owner of workspace records (agent/src/workspace/lifecycle.ts): each
 * transition from the statuses it may start from, every other one refused
 * with nothing written, the one WORKSPACE_CONFLICT, `updatedAt` from the
 * injected clock, and a push result the disk refuses reported and kept.
 */
const REPO = 'https://example.test/acme/app.git';
const T0 = '2030-01-01T00:00:00.000Z';
const STATUSES: WorkspaceStatus[] = ['queued', 'creating', 'ready', 'recovery', 'failed', 'deleting'];

let dir: string;
let disk: Disk;
let store: WorkspaceStore;
let lifecycle: WorkspaceLifecycle;
/** the injected clock: one second further at each reading */
let ticks: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-lifecycle-'));
  disk = { full: false };
  store = fillableStore(join(dir, 'state'), disk);
  ticks = 0;
  lifecycle = new WorkspaceLifecycle(store, { clock: () => new Date(Date.parse(T0) + 1000 * ++ticks), retryEveryMs: 60_000 });
});

afterEach(async () => {
  disk.full = false;
  await lifecycle.flushUnsaved();
  await rm(dir, { recursive: true, force: true });
});

const spec = (id = 'w', extra: Partial<WorkspaceSpec> = {}): WorkspaceSpec => ({
  id,
  repository: REPO,
  configName: null,
  lightweight: false,
  owner: 'alice',
  ...extra,
});
const at = (n: number): string => new Date(Date.parse(T0) + 1000 * n).toISOString();

/** A record in `status` written straight to the store (the test's own set-up, not a transition). */
async function seed(status: WorkspaceStatus, extra: Partial<WorkspaceRecord> = {}): Promise<WorkspaceRecord> {
  const result = status === 'ready' || status === 'recovery' || status === 'failed' ? { ...readyResult('w'), outcome: status } : null;
  const record: WorkspaceRecord = {
    id: 'w',
    repository: REPO,
    configName: null,
    lightweight: false,
    status,
    result,
    owner: 'bob',
    createdAt: T0,
    updatedAt: T0,
    ...extra,
  };
  await store.save(record);
  return record;
}

const pushed: PushResult = { status: 'pushed', ref: 'reg.test/acme/app:cache', reason: null, ms: 7 };
const withPending = (outcome: WorkspaceResult['outcome']): WorkspaceResult => ({
  ...readyResult('w'),
  outcome,
  push: { status: 'pending', ref: 'reg.test/acme/app:cache', reason: null, ms: null },
});

/** Each transition, run on workspace `w` as the job side runs it. */
const RUN: Record<Transition, () => Promise<unknown>> = {
  queue: () => lifecycle.queue(spec()),
  start: () => lifecycle.start('w'),
  startForeground: () => lifecycle.startForeground(spec()),
  settle: () => lifecycle.settle('w', readyResult('w')),
  pushSettled: () => lifecycle.pushSettled('w', 'ready', pushed),
  fail: () => lifecycle.fail('w', { code: 'INTERNAL', message: 'x' }),
  interrupt: () => lifecycle.interrupt('w'),
  recheck: () => lifecycle.recheck('w', { running: false }),
  deleting: () => lifecycle.deleting('w'),
  purge: () => lifecycle.purge('w'),
};

/** Where each may start (pushSettled: from the status its outcome settled in, here `ready`). */
const LEGAL_FROM: Record<Transition, From[]> = {
  queue: ['none', 'failed', 'deleting'],
  start: ['queued'],
  startForeground: ['none', ...STATUSES],
  settle: ['creating'],
  pushSettled: ['ready'],
  fail: ['queued', 'creating'],
  interrupt: ['queued', 'creating'],
  recheck: ['ready', 'recovery'],
  deleting: ['none', ...STATUSES],
  purge: ['none', ...STATUSES],
};

describe('WorkspaceLifecycle: the legal transitions', () => {
  it('queue: a new workspace is queued, with the caller as owner, created and updated now', async () => {
    const { record, previous } = await lifecycle.queue(spec());
    expect(previous).toBeNull();
    expect(record).toEqual({
      id: 'w',
      repository: REPO,
      configName: null,
      lightweight: false,
      status: 'queued',
      result: null,
      owner: 'alice',
      createdAt: at(1),
      updatedAt: at(1),
    });
    expect(await store.load('w')).toEqual(record);
  });

  it.each(['failed', 'deleting'] as const)(
    'queue: a %s workspace is queued again, keeping createdAt and its first owner, its error dropped',
    async (status) => {
      await seed(status, { error: { code: 'AGENT_RESTARTED', message: 'restarted' }, containerMissing: true });
      const { record, previous } = await lifecycle.queue(spec());
      expect(previous?.status).toBe(status);
      expect(record).toEqual({
        id: 'w',
        repository: REPO,
        configName: null,
        lightweight: false,
        status: 'queued',
        result: null,
        owner: 'bob',
        createdAt: T0,
        updatedAt: at(1),
      });
    },
  );

  it('start: queued becomes creating', async () => {
    await lifecycle.queue(spec());
    expect(await lifecycle.start('w')).toMatchObject({ status: 'creating', result: null, owner: 'alice', createdAt: at(1), updatedAt: at(2) });
  });

  it.each(['none', ...STATUSES] as const)('startForeground (the CLI `up`): from %s to a new creating record', async (from) => {
    if (from !== 'none') await seed(from, { error: { code: 'INTERNAL', message: 'x' } });
    const record = await lifecycle.startForeground(spec());
    expect(record).toEqual({
      id: 'w',
      repository: REPO,
      configName: null,
      lightweight: false,
      status: 'creating',
      result: null,
      owner: from === 'none' ? 'alice' : 'bob',
      createdAt: from === 'none' ? at(1) : T0,
      updatedAt: at(1),
    });
  });

  it.each(['ready', 'recovery', 'failed'] as const)('settle: creating becomes %s with the result', async (outcome) => {
    await seed('creating');
    const result = { ...readyResult('w'), outcome };
    expect(await lifecycle.settle('w', result)).toMatchObject({ status: outcome, result, updatedAt: at(1) });
    expect((await store.load('w'))?.status).toBe(outcome);
  });

  it.each(['ready', 'recovery', 'failed'] as const)('pushSettled: a %s record takes the push result, the rest kept', async (outcome) => {
    await seed('creating');
    await lifecycle.settle('w', withPending(outcome));
    const kept = await lifecycle.pushSettled('w', outcome, pushed);
    expect(kept.writeError).toBeNull();
    expect(kept.record).toMatchObject({ status: outcome, result: { ...withPending(outcome), push: pushed }, updatedAt: at(2) });
    expect(await store.load('w')).toEqual(kept.record);
  });

  it.each(['queued', 'creating'] as const)('fail and interrupt: %s becomes failed with the error', async (from) => {
    await seed(from);
    const failed = await lifecycle.fail('w', { code: 'STATE_WRITE_FAILED', message: 'full' });
    expect(failed).toEqual({
      record: expect.objectContaining({ status: 'failed', error: { code: 'STATE_WRITE_FAILED', message: 'full' }, updatedAt: at(1) }),
      writeError: null,
    });
    await seed(from);
    expect(await lifecycle.interrupt('w')).toMatchObject({
      status: 'failed',
      error: { code: 'AGENT_RESTARTED', message: 'the agent stopped while this workspace was being prepared' },
      updatedAt: at(2),
    });
  });

  it.each(['ready', 'recovery'] as const)('recheck: a %s record is flagged when its container is gone; a pending push is failed', async (status) => {
    await seed(status, { result: withPending(status) });
    const record = await lifecycle.recheck('w', { running: false });
    expect(record).toMatchObject({ status, containerMissing: true, updatedAt: at(1) });
    expect(record.result?.push).toEqual({
      status: 'failed',
      ref: 'reg.test/acme/app:cache',
      reason: 'the agent restarted before the push finished',
      ms: null,
    });
    expect(await lifecycle.recheck('w', { running: true })).toMatchObject({ containerMissing: false, updatedAt: at(2) });
  });

  it.each(STATUSES)('deleting: %s becomes deleting, the rest kept', async (from) => {
    const before = await seed(from, { error: { code: 'INTERNAL', message: 'x' } });
    expect(await lifecycle.deleting('w')).toEqual({ ...before, status: 'deleting', updatedAt: at(1) });
  });

  it('deleting: an id with no record (its volume only) gets a blank deleting record', async () => {
    expect(await lifecycle.deleting('w')).toEqual({
      id: 'w',
      repository: '',
      configName: null,
      lightweight: false,
      status: 'deleting',
      result: null,
      createdAt: at(1),
      updatedAt: at(1),
    });
  });

  it('purge removes the record and its directory; asDeleting is the last view, stamped, not written', async () => {
    const before = await seed('ready');
    await lifecycle.purge('w');
    expect(await store.load('w')).toBeNull();
    await expect(stat(store.dir('w'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lifecycle.asDeleting(before)).toEqual({ ...before, status: 'deleting', updatedAt: at(1) });
    expect(lifecycle.asDeleting(null, 'gone')).toMatchObject({ id: 'gone', status: 'deleting', createdAt: at(2), updatedAt: at(2) });
    expect(await store.load('w')).toBeNull();
  });
});

describe('WorkspaceLifecycle: every other transition is refused, nothing written', () => {
  const cases = (Object.keys(LEGAL_FROM) as Transition[]).flatMap((t) =>
    (['none', ...STATUSES] as From[]).filter((from) => !LEGAL_FROM[t].includes(from)).map((from) => [t, from] as const),
  );

  it.each(cases)('%s from %s', async (transition, from) => {
    const before = from === 'none' ? null : await seed(from);
    const err = await RUN[transition]().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IllegalTransition);
    expect(err).toMatchObject({ workspaceId: 'w', transition, from });
    expect(await store.load('w')).toEqual(before);
    expect(ticks).toBe(0);
  });

  it('pushSettled refuses a record that settled in another status than the push belongs to', async () => {
    await seed('recovery');
    await expect(lifecycle.pushSettled('w', 'ready', pushed)).rejects.toMatchObject({ transition: 'pushSettled', from: 'recovery' });
  });
});

describe('WorkspaceLifecycle: one WORKSPACE_CONFLICT', () => {
  it.each([
    ['queue', 'failed', 'failed earlier'],
    ['queue', 'deleting', 'was deleted'],
    ['startForeground', 'ready', 'is ready'],
  ] as const)('%s over a %s record of another repository: the same check, the same message', async (transition, status, was) => {
    const before = await seed(status, { repository: 'https://example.test/acme/other.git' });
    const err = await (transition === 'queue' ? lifecycle.queue(spec()) : lifecycle.startForeground(spec())).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'WORKSPACE_CONFLICT',
      message: `workspace w ${was} with another repository on its volume: purge it first (DELETE ?purge=true)`,
      detail: 'existing: https://example.test/acme/other.git',
    });
    expect(await store.load('w')).toEqual(before);
  });
});

describe('WorkspaceLifecycle when the disk refuses a write', () => {
  it('a push result that cannot be written is reported (writeError), served from memory, the disk keeping the rest; written once there is room', async () => {
    await seed('creating');
    await lifecycle.settle('w', withPending('ready'));
    disk.full = true;
    const kept = await lifecycle.pushSettled('w', 'ready', pushed);
    expect(kept.writeError).toMatchObject({ code: 'STATE_WRITE_FAILED', detail: expect.stringMatching(/ENOSPC/) });
    expect((await store.load('w'))?.result?.push).toEqual(pushed);
    const onDisk = async (): Promise<WorkspaceRecord> =>
      JSON.parse(await readFile(join(store.dir('w'), 'workspace.json'), 'utf8')) as WorkspaceRecord;
    expect(await onDisk()).toMatchObject({ status: 'ready', result: { containerId: 'c-w', push: { status: 'pending' } } });
    disk.full = false;
    await lifecycle.flushUnsaved();
    expect((await onDisk()).result?.push).toEqual(pushed);
  });

  it('a failure that cannot be written is reported and kept the same way', async () => {
    await seed('creating');
    disk.full = true;
    const kept = await lifecycle.fail('w', { code: 'STATE_WRITE_FAILED', message: 'full' });
    expect(kept.writeError).toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect((await store.load('w'))?.status).toBe('failed');
  });

  it('queue refuses what it cannot write: a new workspace leaves no directory, an old one keeps its record', async () => {
    disk.full = true;
    await expect(lifecycle.queue(spec())).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    await expect(stat(store.dir('w'))).rejects.toMatchObject({ code: 'ENOENT' });
    disk.full = false;
    const before = await seed('failed');
    disk.full = true;
    await expect(lifecycle.queue(spec())).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    disk.full = false;
    expect(await store.load('w')).toEqual(before);
  });

  it('transitions that record a request or a step are not kept in memory: the rejection is the report', async () => {
    await seed('queued');
    disk.full = true;
    await expect(lifecycle.start('w')).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    disk.full = false;
    expect((await store.load('w'))?.status).toBe('queued');
  });
});

describe('WorkspaceLifecycle: one transition of a workspace at a time', () => {
  it('a transition asked while another runs sees its result: two POSTs queue once', async () => {
    const both = await Promise.allSettled([lifecycle.queue(spec()), lifecycle.queue(spec())]);
    expect(both.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect((both[1] as PromiseRejectedResult).reason).toBeInstanceOf(IllegalTransition);
  });
});
