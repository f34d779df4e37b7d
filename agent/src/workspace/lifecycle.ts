import type { Logger } from 'pino';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { WarmstartError } from '../errors.js';
import type { WorkspaceRecord, WorkspaceStatus, WorkspaceStore } from '../state/workspace-store.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import type { RequestDigest } from './idempotency.js';

/** What a workspace is, from its plan (workspace/plan.ts): what a new record is made of. */
export interface WorkspaceSpec {
  id: string;
  /** the clone URL */
  repository: string;
  configName: string | null;
  lightweight: boolean;
  /** the caller's subject; a record that exists keeps the owner it was created with */
  owner: string | null;
  /** digests of the POST that asks for this run (workspace/idempotency.ts); none for the CLI */
  request?: RequestDigest;
}

export type Transition = 'queue' | 'start' | 'startForeground' | 'settle' | 'pushSettled' | 'fail' | 'interrupt' | 'recheck' | 'deleting' | 'purge';

/** A record's status, or `none` when there is no record. */
export type From = WorkspaceStatus | 'none';

const ANY: readonly From[] = ['none', 'queued', 'creating', 'ready', 'recovery', 'failed', 'deleting'];

/**
 * Where each transition may start. docs/api.md "Idempotency": a POST takes
 * over a `failed` id or one deleted without purge; a foreground `up`
 * prepares any id again on its volume, as it always has.
 */
const LEGAL: Record<Transition, ReadonlySet<From>> = {
  queue: new Set(['none', 'failed', 'deleting']),
  start: new Set(['queued']),
  startForeground: new Set(ANY),
  settle: new Set(['creating']),
  // ...and only the status the result settled in: see pushSettled
  pushSettled: new Set(['ready', 'recovery', 'failed']),
  fail: new Set(['queued', 'creating']),
  interrupt: new Set(['queued', 'creating']),
  recheck: new Set(['ready', 'recovery']),
  deleting: new Set(ANY),
  purge: new Set(ANY),
};

/** A transition asked of a record in a status it does not start from. Nothing was written. */
export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly workspaceId: string,
    readonly transition: Transition,
    readonly from: From,
  ) {
    super(`workspace ${workspaceId}: ${transition} is not allowed from ${from}`);
  }
}

/** May `transition` start from `status`? */
export function isLegal(transition: Transition, from: From): boolean {
  return LEGAL[transition].has(from);
}

/**
 * The one WORKSPACE_CONFLICT check: an id whose record (and volume) belongs
 * to another repository is not prepared for this one until it is purged.
 */
export function assertSameRepository(existing: Pick<WorkspaceRecord, 'id' | 'status' | 'repository'> | null, repository: string): void {
  if (!existing || existing.repository === repository) return;
  const was = existing.status === 'failed' ? 'failed earlier' : existing.status === 'deleting' ? 'was deleted' : `is ${existing.status}`;
  throw new WarmstartError(
    'WORKSPACE_CONFLICT',
    `workspace ${existing.id} ${was} with another repository on its volume: purge it first (DELETE ?purge=true)`,
    {
      detail: `existing: ${existing.repository}`,
    },
  );
}

/** What a transition that records what has happened resolves with: the record, and the write error if the disk refused it. */
export interface Kept {
  record: WorkspaceRecord;
  /** set when the write failed: the record is kept in memory (served from there) and written again later */
  writeError: unknown;
}

export interface LifecycleOptions {
  /** the one clock every `updatedAt` comes from */
  clock?: () => Date;
  /** where retries of records kept in memory are logged */
  logger?: Pick<Logger, 'info'>;
  /** how often records kept in memory are tried again */
  retryEveryMs?: number;
}

/**
 * The one owner of workspace records (state/workspace-store.ts): every status
 * change goes through a transition here, which checks the status it comes
 * from, stamps `updatedAt` and writes. Transitions of one workspace run one
 * at a time, so a check and its write are never split by another transition.
 * Statuses: docs/api.md "Workspaces".
 */
export class WorkspaceLifecycle {
  private readonly clock: () => Date;
  private readonly chains = new KeyedQueue();
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly store: WorkspaceStore,
    private readonly options: LifecycleOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
  }

  now(): string {
    return this.clock().toISOString();
  }

  load(id: string): Promise<WorkspaceRecord | null> {
    return this.store.load(id);
  }

  /**
   * A POST: the workspace is `queued`, prepared again on its volume when it
   * failed or was deleted. A record that cannot be written refuses it: a new
   * workspace leaves no directory, an old one keeps its record as it was.
   */
  queue(spec: WorkspaceSpec): Promise<{ record: WorkspaceRecord; previous: WorkspaceRecord | null }> {
    return this.serially(spec.id, async () => {
      const previous = await this.from('queue', spec.id);
      assertSameRepository(previous, spec.repository);
      const record = this.fresh(spec, previous, 'queued');
      try {
        await this.store.save(record);
      } catch (err) {
        if (!previous) await this.store.remove(spec.id).catch(() => undefined); // a half-made dir of a refused queue; the save's error is the one to report
        throw err;
      }
      return { record, previous };
    });
  }

  /** The daemon's job begins: its queued record becomes `creating`. */
  start(id: string): Promise<WorkspaceRecord> {
    return this.write(id, 'start', (r) => ({ ...r, status: 'creating', result: null }));
  }

  /** A foreground `up` begins: whatever the id held becomes a new `creating` record (createdAt and owner kept). */
  startForeground(spec: WorkspaceSpec): Promise<WorkspaceRecord> {
    return this.serially(spec.id, async () => {
      const previous = await this.from('startForeground', spec.id);
      assertSameRepository(previous, spec.repository);
      const record = this.fresh(spec, previous, 'creating');
      await this.store.save(record);
      return record;
    });
  }

  /** The pipeline's result at ready: `ready`, `recovery` or `failed`; the push may still be pending. */
  settle(id: string, result: WorkspaceResult): Promise<WorkspaceRecord> {
    return this.write(id, 'settle', (r) => ({ ...r, status: result.outcome, result }));
  }

  /**
   * The push settled after ready: the record of the outcome it belongs to
   * takes its result. Kept in memory if the disk refuses (`writeError`).
   */
  pushSettled(id: string, outcome: WorkspaceResult['outcome'], push: PushResult): Promise<Kept> {
    return this.keep(id, 'pushSettled', (r) => {
      if (r.status !== outcome || !r.result) throw new IllegalTransition(id, 'pushSettled', r.status);
      return { ...r, result: { ...r.result, push } };
    });
  }

  /** The job stopped with an error instead of an outcome. Kept in memory if the disk refuses (`writeError`). */
  fail(id: string, error: NonNullable<WorkspaceRecord['error']>): Promise<Kept> {
    return this.keep(id, 'fail', (r) => ({ ...r, status: 'failed', error }));
  }

  /** At start-up: a record an agent left queued or creating when it died is failed AGENT_RESTARTED. */
  interrupt(id: string): Promise<WorkspaceRecord> {
    return this.write(id, 'interrupt', (r) => ({
      ...r,
      status: 'failed',
      error: { code: 'AGENT_RESTARTED', message: 'the agent stopped while this workspace was being prepared' },
    }));
  }

  /**
   * At start-up, a ready (or recovery) workspace as Docker has it: flagged
   * when its container is not running; a push that never settled is failed.
   */
  recheck(id: string, found: { running: boolean }): Promise<WorkspaceRecord> {
    return this.write(id, 'recheck', (r) => {
      const result =
        r.result?.push.status === 'pending'
          ? { ...r.result, push: { ...r.result.push, status: 'failed' as const, reason: 'the agent restarted before the push finished' } }
          : r.result;
      return { ...r, result, containerMissing: !found.running };
    });
  }

  /** A DELETE (without purge, or before one): the workspace is `deleting`; an id with no record gets a blank one. */
  deleting(id: string): Promise<WorkspaceRecord> {
    return this.serially(id, async () => {
      const current = await this.from('deleting', id);
      const record = this.asDeleting(current, id);
      await this.store.save(record);
      return record;
    });
  }

  /** The record removed with the workspace's state directory (workspace/remove.ts). */
  purge(id: string): Promise<void> {
    return this.serially(id, async () => {
      await this.from('purge', id);
      await this.store.remove(id);
    });
  }

  /** What a purged workspace's last view shows: the record (or a blank one) as `deleting`, not written. */
  asDeleting(record: WorkspaceRecord | null, id = record?.id ?? ''): WorkspaceRecord {
    const now = this.now();
    return { ...(record ?? blank(id, now)), status: 'deleting', updatedAt: now };
  }

  /** Writes the records kept in memory, if any; stops retrying once none is left. */
  async flushUnsaved(): Promise<void> {
    const before = this.store.unsavedCount();
    if (before === 0) return;
    const left = await this.store.flushUnsaved();
    if (left < before) this.options.logger?.info({ written: before - left, left }, 'workspace records written again');
    if (left === 0 && this.retryTimer) {
      clearInterval(this.retryTimer);
      this.retryTimer = null;
    }
  }

  /** The record now, refused unless `transition` may start from its status. */
  private async from(transition: Transition, id: string): Promise<WorkspaceRecord | null> {
    const current = await this.store.load(id);
    const status: From = current?.status ?? 'none';
    if (!isLegal(transition, status)) throw new IllegalTransition(id, transition, status);
    return current;
  }

  private fresh(spec: WorkspaceSpec, previous: WorkspaceRecord | null, status: 'queued' | 'creating'): WorkspaceRecord {
    const now = this.now();
    return {
      id: spec.id,
      repository: spec.repository,
      configName: spec.configName,
      lightweight: spec.lightweight,
      status,
      result: null,
      // Recorded once, at creation: a workspace prepared again keeps its first owner.
      owner: previous ? (previous.owner ?? null) : spec.owner,
      // Of this run's POST only: a run of the CLI, or a POST without it, is no repeat of an earlier POST.
      ...(spec.request ? { request: spec.request } : {}),
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
    };
  }

  /** A transition of an existing record: checked, changed, stamped, written. */
  private write(id: string, transition: Transition, change: (r: WorkspaceRecord) => WorkspaceRecord): Promise<WorkspaceRecord> {
    return this.serially(id, async () => {
      const record = await this.changed(id, transition, change);
      await this.store.save(record);
      return record;
    });
  }

  /** As write, for what has happened: a refused write keeps the record in memory and retries it. */
  private keep(id: string, transition: Transition, change: (r: WorkspaceRecord) => WorkspaceRecord): Promise<Kept> {
    return this.serially(id, async () => {
      const record = await this.changed(id, transition, change);
      try {
        await this.store.save(record, { keepIfUnwritten: true });
        return { record, writeError: null };
      } catch (err) {
        this.scheduleRetry();
        return { record, writeError: err };
      }
    });
  }

  private async changed(id: string, transition: Transition, change: (r: WorkspaceRecord) => WorkspaceRecord): Promise<WorkspaceRecord> {
    const current = await this.from(transition, id);
    if (!current) throw new IllegalTransition(id, transition, 'none');
    return { ...change(current), updatedAt: this.now() };
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setInterval(() => void this.flushUnsaved(), this.options.retryEveryMs ?? 5_000);
    this.retryTimer.unref();
  }

  private serially<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.chains.run(id, fn);
  }
}

/** The record of an id that had none (a volume left without state). */
function blank(id: string, now: string): WorkspaceRecord {
  return { id, repository: '', configName: null, lightweight: false, status: 'deleting', result: null, createdAt: now, updatedAt: now };
}
