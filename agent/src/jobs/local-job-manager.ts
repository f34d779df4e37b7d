import type { Logger } from 'pino';
import type { CreateWorkspaceBody, WorkspaceView } from '../../../shared/src/api.js';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { assertCallbackUrl, callbackTarget, type CallbackPolicy } from '../callbacks/callback-url.js';
import type { CallbackOutbox } from '../callbacks/outbox.js';
import { describeError, WarmstartError } from '../errors.js';
import { boundEvent, type BoundListener } from '../events/event-bounds.js';
import { teeSinks, type EventSink, type WorkspaceEvent } from '../events/events.js';
import type { Metrics } from '../metrics/metrics.js';
import type { WorkspaceRecord, WorkspaceStatus } from '../state/workspace-store.js';
import { planJob } from '../workspace/plan.js';
import { prepareWorkspace, type PipelineDeps } from '../workspace/pipeline.js';
import { removeWorkspaceContainers } from '../workspace/default-container.js';
import { removeWorkspace, workspaceVolume } from '../workspace/remove.js';
import type { PrepareRequest } from '../workspace/request.js';
import { JobEvents } from './event-hub.js';
import type { Caller, JobManager } from './job-manager.js';
import { requestFromBody } from './request-from-body.js';
import { toView } from './view.js';

export interface LocalJobManagerOptions {
  deps: PipelineDeps;
  metrics: Metrics;
  outbox: CallbackOutbox;
  logger: Logger;
  /** WARMSTART_MAX_CONCURRENT_BUILDS */
  maxConcurrent: number;
  /** WARMSTART_ALLOW_LOCAL_REPOS */
  allowLocalRepos: boolean;
  /** where callbacks may go; absent: no origin listed, so private and loopback hosts are refused */
  callbackPolicy?: CallbackPolicy;
}

interface Job {
  id: string;
  request: PrepareRequest;
  callback: CreateWorkspaceBody['callback'];
  controller: AbortController;
  events: JobEvents;
  state: 'queued' | 'running' | 'pushing';
  /** DELETE arrived: the control plane asked for the end, it needs no callback */
  deleting: boolean;
  /** settles when the job, push included, is over */
  done: Promise<void>;
  resolveDone: () => void;
}

/** How often records that could not be written (a full disk) are tried again. */
const FLUSH_EVERY_MS = 5_000;

/** Statuses a POST of the same id takes over: the job is over and the volume kept. */
const PREPARED_AGAIN: ReadonlySet<WorkspaceStatus> = new Set(['failed', 'deleting']);

/**
 * Runs workspace jobs on this node: a FIFO queue with a concurrency limit, at
 * most one job per workspace, the pipeline for each, then callbacks. Secrets
 * of a job (git token, registry password, callback token) live only in memory
 * here; records on disk never hold them.
 */
export class LocalJobManager implements JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  /** builds other than workspace jobs (prebuilds) waiting for a slot */
  private readonly slotWaiters: Array<() => void> = [];
  private running = 0;
  private acceptingJobs = true;
  /** ids a POST is working on right now (between its first await and its end) */
  private readonly submitting = new Set<string>();
  /** ids a DELETE is working on right now, with how many DELETEs */
  private readonly removing = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: LocalJobManagerOptions) {}

  private readonly countBound: BoundListener = (action, lines) => this.o.metrics.eventLines(action, lines);

  get accepting(): boolean {
    return this.acceptingJobs;
  }

  stopAccepting(): void {
    this.acceptingJobs = false;
  }

  /**
   * Records the workspace as `queued` and schedules its job. An id that
   * exists is refused (409), except one with no job that `failed` or was
   * deleted without purge (`deleting`, no DELETE at work on it): that is
   * prepared again on its kept volume. A record that cannot be written
   * refuses the request with STATE_WRITE_FAILED and leaves nothing behind.
   */
  async submit(body: CreateWorkspaceBody, caller?: Caller): Promise<WorkspaceView> {
    if (!this.acceptingJobs) throw new WarmstartError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
    const request = requestFromBody(body, { allowLocalRepos: this.o.allowLocalRepos, maxPushTimeoutMs: this.o.deps.config.pushTimeoutMs }, caller);
    const plan = planJob(request, this.o.deps.config); // every input error, before anything is created
    if (body.callback) await assertCallbackUrl(body.callback.url, this.o.callbackPolicy ?? { origins: new Set() });
    const id = plan.workspaceId;
    const exists = (): WarmstartError => new WarmstartError('WORKSPACE_EXISTS', `workspace ${id} already exists on this node`);
    // Claimed before the first await: two POSTs of one id at once make one job.
    if (this.jobs.has(id) || this.submitting.has(id) || this.removing.has(id)) throw exists();
    this.submitting.add(id);
    try {
      await this.flushUnsaved();
      const existing = await this.o.deps.store.load(id);
      if (existing && !PREPARED_AGAIN.has(existing.status)) throw exists();
      if (existing && existing.repository !== plan.repo.cloneUrl) {
        const was = existing.status === 'failed' ? 'failed earlier' : 'was deleted';
        throw new WarmstartError('WORKSPACE_CONFLICT', `workspace ${id} ${was} with another repository on its volume: purge it first (DELETE ?purge=true)`, {
          detail: `existing: ${existing.repository}`,
        });
      }
      const now = new Date().toISOString();
      const record: WorkspaceRecord = {
        id,
        repository: plan.repo.cloneUrl,
        configName: plan.configName,
        lightweight: plan.lightweight,
        status: 'queued',
        result: null,
        // Recorded once, at creation: a workspace prepared again keeps its first owner.
        owner: existing ? (existing.owner ?? null) : (request.owner ?? null),
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      try {
        await this.o.deps.store.save(record);
      } catch (err) {
        // Refused: a new workspace leaves no directory; a failed one keeps its record as it was.
        if (!existing) await this.o.deps.store.remove(id).catch(() => undefined);
        this.o.logger.error({ workspaceId: id, err: describeError(err) }, 'could not record a new job; refused');
        throw err;
      }
      let resolveDone!: () => void;
      const done = new Promise<void>((r) => (resolveDone = r));
      const job: Job = {
        id,
        request,
        callback: body.callback,
        controller: new AbortController(),
        events: new JobEvents({ onBound: this.countBound }),
        state: 'queued',
        deleting: false,
        done,
        resolveDone,
      };
      this.jobs.set(job.id, job);
      this.queue.push(job);
      this.o.metrics.jobStatus('queued');
      this.o.logger.info({ workspaceId: job.id, repository: record.repository, retry: existing !== null }, 'job queued');
      this.pump();
      return toView(record);
    } finally {
      this.submitting.delete(id);
    }
  }

  async get(id: string): Promise<WorkspaceView | null> {
    const record = await this.o.deps.store.load(id);
    return record ? toView(record) : null;
  }

  async list(): Promise<WorkspaceView[]> {
    const records = await this.o.deps.store.list();
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map(toView);
  }

  async remove(id: string, options: { purge: boolean }): Promise<WorkspaceView> {
    const { store, engine } = this.o.deps;
    this.removing.set(id, (this.removing.get(id) ?? 0) + 1);
    try {
      const record = await store.load(id);
      if (!record && !this.jobs.has(id) && !(await engine.volumeExists(workspaceVolume(id)))) {
        throw new WarmstartError('WORKSPACE_NOT_FOUND', `no workspace ${id} on this node`);
      }
      const log = this.o.logger.child({ workspaceId: id });
      if (record) {
        try {
          await store.save({ ...record, status: 'deleting', updatedAt: new Date().toISOString() });
        } catch (err) {
          // A purge removes the record anyway; without it the delete could not be recorded: refuse, change nothing.
          if (!options.purge) throw err;
          log.warn({ err: describeError(err) }, 'could not record the deletion; purging anyway');
        }
      }
      const job = this.jobs.get(id);
      if (job) {
        job.deleting = true;
        job.controller.abort();
        const queued = this.queue.indexOf(job);
        if (queued >= 0) {
          this.queue.splice(queued, 1);
          this.finish(job);
        } else if (job.state === 'running') {
          await job.done; // the pipeline stops at its next phase; the CLI is killed
        }
      }
      await removeWorkspace(this.o.deps, id, options.purge);
      const last: WorkspaceRecord = { ...(record ?? blankRecord(id)), status: 'deleting', updatedAt: new Date().toISOString() };
      if (!options.purge) await store.save(last);
      log.info({ purge: options.purge }, 'workspace deleted');
      return toView(last);
    } finally {
      const left = (this.removing.get(id) ?? 1) - 1;
      if (left > 0) this.removing.set(id, left);
      else this.removing.delete(id);
    }
  }

  async *events(id: string, signal: AbortSignal): AsyncGenerator<WorkspaceEvent> {
    const job = this.jobs.get(id);
    if (job) {
      yield* job.events.follow(signal);
      return;
    }
    // A job of an earlier run, or one that is over: what the log holds.
    for (const e of await this.o.deps.store.readEvents(id)) {
      if (signal.aborted) return;
      yield e;
    }
  }

  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] } {
    const all = [...this.jobs.values()];
    return {
      running: this.running,
      queued: this.queue.length + this.slotWaiters.length,
      pushing: all.filter((j) => j.state === 'pushing').length,
      activeWorkspaces: all.map((j) => j.id),
    };
  }

  /** Cancels queued and running builds (shutdown); pushes are left to finish. */
  cancelBuilds(): void {
    for (const job of this.jobs.values()) if (job.state !== 'pushing') job.controller.abort();
  }

  /** Resolves when every job, pushes included, is over, or after `ms`. */
  async drain(ms: number): Promise<boolean> {
    const all = Promise.all([...this.jobs.values()].map((j) => j.done)).then(() => true);
    const timeout = new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref());
    return Promise.race([all, timeout]);
  }

  /**
   * Waits for one of this node's build slots (WARMSTART_MAX_CONCURRENT_BUILDS)
   * for a build that is not a workspace job (jobs/prebuild-manager.ts);
   * resolves with the function that frees it. Queued workspace jobs take a
   * free slot first: someone is waiting for a workspace, nobody for a
   * prebuild. Rejects with JOB_CANCELLED if `signal` aborts while waiting.
   */
  buildSlot(signal: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const cancelled = (): WarmstartError => new WarmstartError('JOB_CANCELLED', 'cancelled while waiting for a build slot');
      if (signal.aborted) return reject(cancelled());
      let freed = false;
      const free = (): void => {
        if (freed) return;
        freed = true;
        this.running -= 1;
        this.pump();
      };
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(free);
      };
      const onAbort = (): void => {
        const i = this.slotWaiters.indexOf(grant);
        if (i >= 0) this.slotWaiters.splice(i, 1);
        reject(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.slotWaiters.push(grant);
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.o.maxConcurrent && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running += 1;
      job.state = 'running';
      void this.run(job);
    }
    while (this.running < this.o.maxConcurrent && this.slotWaiters.length > 0) {
      this.running += 1;
      this.slotWaiters.shift()!();
    }
  }

  private async run(job: Job): Promise<void> {
    const log = this.o.logger.child({ workspaceId: job.id });
    const { deps, metrics } = this.o;
    let buildSlotFree = false;
    const freeSlot = (): void => {
      if (buildSlotFree) return;
      buildSlotFree = true;
      this.running -= 1;
      this.pump();
    };
    let result: WorkspaceResult | null = null;
    try {
      log.info('job started');
      metrics.jobStatus('creating');
      const sink = cutLongText(this.countBound, teeSinks(job.events, deps.store.eventLog(job.id, { onBound: this.countBound }), {
        emit: (e) => {
          if (e.type === 'phase-end' && e.phase && e.ms !== undefined) metrics.phase(e.phase, e.ms);
          if (e.type === 'phase-end' && e.status === 'failed') log.warn({ phase: e.phase }, 'phase failed');
          // Counted when it is recorded, so /metrics agrees with the record as soon as it is saved.
          if (e.type === 'push' && e.status) metrics.push(e.status, e.text ?? null);
        },
      }));
      const prepared = await prepareWorkspace(deps, job.request, sink, { signal: job.controller.signal });
      result = prepared.result;
      this.recordResult(result);
      log.info({ outcome: result.outcome, cacheHit: result.cache.hit, readyMs: result.timings.ready }, 'job finished');
      job.events.close();
      freeSlot(); // the push does not hold a build slot
      job.state = 'pushing';
      await this.notify(job, result.outcome === 'failed' ? 'provisioning-failed' : 'ready');
      const push = await prepared.push;
      log.info({ pushStatus: push.status, pushMs: push.ms, reason: push.reason }, 'push settled');
      await this.keepPushResult(job.id, result.outcome, push);
    } catch (err) {
      if (result) {
        // The workspace is settled and recorded; only what came after (the callback) failed.
        log.error({ err: describeError(err) }, 'after the job: could not queue its callback');
      } else {
        await this.failJob(job, err);
      }
    } finally {
      freeSlot();
      this.finish(job);
    }
  }

  /**
   * The pipeline stopped with an error instead of an outcome: its record could
   * not be written (STATE_WRITE_FAILED, a full disk) or something unexpected.
   * The workspace is failed, kept in memory when the disk refuses it, with no
   * container (a container without a durable record would be lost to the next
   * restart); its volume stays. The control plane hears provisioning-failed.
   */
  private async failJob(job: Job, err: unknown): Promise<void> {
    const log = this.o.logger.child({ workspaceId: job.id });
    const stateLost = err instanceof WarmstartError && err.code === 'STATE_WRITE_FAILED';
    log.error({ err: describeError(err) }, stateLost ? 'could not write the workspace state; job failed' : 'job failed unexpectedly');
    this.o.metrics.jobStatus('failed');
    if (job.deleting) return; // the DELETE takes it from here
    const removed = await removeWorkspaceContainers(this.o.deps.engine, job.id).catch((e: unknown) => {
      log.error({ err: describeError(e) }, 'could not remove the containers of a failed job');
      return 0;
    });
    if (removed > 0) log.warn({ containersRemoved: removed }, 'removed the containers of a job that could not be recorded');
    const error = stateLost
      ? { code: 'STATE_WRITE_FAILED', message: 'the agent could not write the workspace state (is the state directory full?)', detail: (err as WarmstartError).detail ?? describeError(err) }
      : { code: 'INTERNAL', message: 'the job failed unexpectedly', detail: describeError(err) };
    const failed = await this.markFailed(job.id, error);
    if (failed) await this.notify(job, 'provisioning-failed').catch((e: unknown) => log.error({ err: describeError(e) }, 'could not queue the callback'));
  }

  private recordResult(result: WorkspaceResult): void {
    const { metrics } = this.o;
    metrics.jobStatus(result.outcome);
    metrics.cache(result.cache.hit, result.cache.reason);
    if (result.cache.stepsTotal !== null) metrics.buildSteps(result.cache.stepsCached ?? 0, result.cache.stepsTotal);
  }

  /** The control plane hears ready (ready or recovery) or provisioning-failed, once. */
  private async notify(job: Job, kind: 'ready' | 'provisioning-failed'): Promise<void> {
    if (!job.callback || job.deleting) return;
    const view = await this.get(job.id);
    if (!view) return;
    await this.o.outbox.enqueue({
      url: callbackTarget(job.callback.url, job.id, kind),
      token: job.callback.token,
      body: { workspaceId: job.id, status: view.status, workspace: view },
      kind,
      workspaceId: job.id,
    });
  }

  /**
   * The pipeline records the push's outcome but shrugs off a failed write; a
   * record still saying `pending` after the push settled gets it here, kept in
   * memory if the disk still refuses.
   */
  private async keepPushResult(id: string, outcome: WorkspaceStatus, push: PushResult): Promise<void> {
    const latest = await this.o.deps.store.load(id).catch(() => null);
    if (!latest?.result || latest.status !== outcome || latest.result.push.status !== 'pending') return;
    await this.saveOrKeep({ ...latest, result: { ...latest.result, push }, updatedAt: new Date().toISOString() });
  }

  /** Marks a workspace failed unless it is being deleted; resolves with the record (null if none). */
  private async markFailed(id: string, error: NonNullable<WorkspaceRecord['error']>): Promise<WorkspaceRecord | null> {
    const record = await this.o.deps.store.load(id).catch(() => null);
    if (!record || record.status === 'deleting') return null;
    const failed: WorkspaceRecord = { ...record, status: 'failed', error, updatedAt: new Date().toISOString() };
    await this.saveOrKeep(failed);
    return failed;
  }

  /** Saves a record of what happened; if the disk refuses, keeps it in memory and tries again later. */
  private async saveOrKeep(record: WorkspaceRecord): Promise<void> {
    try {
      await this.o.deps.store.save(record, { keepIfUnwritten: true });
    } catch (err) {
      this.o.logger.error({ workspaceId: record.id, status: record.status, err: describeError(err) }, 'could not write the workspace record; kept in memory, will retry');
      this.scheduleFlush();
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setInterval(() => void this.flushUnsaved(), FLUSH_EVERY_MS);
    this.flushTimer.unref();
  }

  /** Writes records kept in memory, if any; stops retrying once none is left. */
  private async flushUnsaved(): Promise<void> {
    const { store } = this.o.deps;
    const before = store.unsavedCount();
    if (before === 0) return;
    const left = await store.flushUnsaved();
    if (left < before) this.o.logger.info({ written: before - left, left }, 'workspace records written again');
    if (left === 0 && this.flushTimer) {
      clearInterval(this.flushTimer);
      this.flushTimer = null;
    }
  }

  private finish(job: Job): void {
    job.events.close();
    this.jobs.delete(job.id);
    job.resolveDone();
  }
}

/** Splits log chunks into lines and cuts each text to the cap (events/event-bounds.ts) once, before the history and the log see them; counts the cuts. */
function cutLongText(onBound: BoundListener, inner: EventSink): EventSink {
  return {
    emit: (e) => {
      const { events, cut } = boundEvent(e);
      if (cut > 0) onBound('cut', cut);
      for (const one of events) inner.emit(one);
    },
  };
}

function blankRecord(id: string): WorkspaceRecord {
  const now = new Date().toISOString();
  return { id, repository: '', configName: null, lightweight: false, status: 'deleting', result: null, createdAt: now, updatedAt: now };
}

