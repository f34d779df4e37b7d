import type { Logger } from 'pino';
import type { CreateWorkspaceBody, ExistingWorkspaceView, WorkspaceView } from '../../../shared/src/api.js';
import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { describeError, WarmstartError } from '../errors.js';
import type { BoundListener } from '../events/event-bounds.js';
import { between, nextSeq, sequencingSink } from '../events/event-seq.js';
import { teeSinks, type WorkspaceEvent } from '../events/events.js';
import type { Metrics } from '../metrics/metrics.js';
import type { WorkspaceRecord } from '../state/workspace-store.js';
import { removeWorkspaceContainers } from '../workspace/default-container.js';
import { findRepeat, requestDigest, type RequestDigest } from '../workspace/idempotency.js';
import { IllegalTransition, WorkspaceLifecycle } from '../workspace/lifecycle.js';
import type { Pipeline, PipelineDeps } from '../workspace/pipeline.js';
import { planJob } from '../workspace/plan.js';
import { removeWorkspace, workspaceVolume } from '../workspace/remove.js';
import type { PrepareRequest } from '../workspace/request.js';
import { JobEvents } from './event-hub.js';
import { JobQueue, workspaceExists } from './job-queue.js';
import type { Caller, EventsOptions, JobManager, SubmitOptions } from './job-manager.js';
import type { NotificationKind, Notifier } from './notifier.js';
import { requestFromBody } from './request-from-body.js';
import { toView } from './view.js';
import { settlesWithin } from '../util/with-timeout.js';

export interface LocalJobManagerOptions {
  deps: PipelineDeps;
  /** the workspace pipeline (workspace/pipeline.ts prepareWorkspace; a scripted one in tests) */
  pipeline: Pipeline;
  /** the control plane's callbacks (jobs/notifier.ts) */
  notifier: Notifier;
  metrics: Metrics;
  logger: Logger;
  /** WARMSTART_MAX_CONCURRENT_BUILDS */
  maxConcurrent: number;
  /** WARMSTART_ALLOW_LOCAL_REPOS */
  allowLocalRepos: boolean;
  /** the owner of the records; absent: one over deps.store */
  lifecycle?: WorkspaceLifecycle;
}

interface Job {
  id: string;
  request: PrepareRequest;
  callback: CreateWorkspaceBody['callback'];
  controller: AbortController;
  events: JobEvents;
  /** the seq of this run's first event: the log's earlier runs hold the ones below */
  firstSeq: number;
  state: 'queued' | 'running' | 'pushing';
  /** DELETE arrived: the control plane asked for the end, it needs no callback */
  deleting: boolean;
  /** settles when the job, push included, is over */
  done: Promise<void>;
  resolveDone: () => void;
}

/**
 * Runs workspace jobs on this node: the queue (jobs/job-queue.ts) runs the
 * pipeline for each, the lifecycle (workspace/lifecycle.ts) records what
 * happens, the notifier (jobs/notifier.ts) tells the control plane. Secrets
 * of a job (git token, registry password, callback token) live only in
 * memory here; records on disk never hold them.
 */
export class LocalJobManager implements JobManager {
  private readonly queue: JobQueue<Job>;
  private readonly lifecycle: WorkspaceLifecycle;
  /** Idempotency-Key digests of POSTs at work now: a second POST with one is IDEMPOTENCY_KEY_IN_USE */
  private readonly keysAtWork = new Set<string>();

  constructor(private readonly o: LocalJobManagerOptions) {
    this.lifecycle = o.lifecycle ?? new WorkspaceLifecycle(o.deps.store, { logger: o.logger });
    this.queue = new JobQueue<Job>({ maxConcurrent: o.maxConcurrent, run: (job, free) => this.run(job, free) });
  }

  private readonly countBound: BoundListener = (action, lines) => this.o.metrics.eventLines(action, lines);

  get accepting(): boolean {
    return this.queue.accepting;
  }

  stopAccepting(): void {
    this.queue.stopAccepting();
  }

  /**
   * Records the workspace as `queued` and schedules its job. A POST that
   * repeats the one that made a queued, running or ready workspace (same
   * caller and body, or its Idempotency-Key) is answered with that workspace
   * (workspace/idempotency.ts). Any other POST of an id that exists is
   * refused (409), except one with no job that `failed` or was deleted
   * without purge (`deleting`, no DELETE at work on it): that is prepared
   * again on its kept volume. A record that cannot be written refuses the
   * request with STATE_WRITE_FAILED and leaves nothing behind.
   */
  async submit(body: CreateWorkspaceBody, caller?: Caller, options: SubmitOptions = {}): Promise<WorkspaceView | ExistingWorkspaceView> {
    this.queue.admit();
    const digest = requestDigest(body, options.requester ?? 'node', options.idempotencyKey);
    if (digest.key !== null) {
      if (this.keysAtWork.has(digest.key)) {
        throw new WarmstartError('IDEMPOTENCY_KEY_IN_USE', 'a request with this Idempotency-Key is still at work: try again shortly');
      }
      this.keysAtWork.add(digest.key);
    }
    try {
      return (await this.repeated(body.id, digest)) ?? (await this.submitNew(body, digest, caller));
    } finally {
      if (digest.key !== null) this.keysAtWork.delete(digest.key);
    }
  }

  /** The workspace a POST repeats the POST of, answered as it is now; null for a new request. */
  private async repeated(id: string, digest: RequestDigest): Promise<ExistingWorkspaceView | null> {
    const record = await findRepeat(this.o.deps.store, id, digest, (badId, err) =>
      this.o.logger.warn({ workspaceId: badId, err: describeError(err) }, 'workspace record unreadable'),
    );
    return record ? { ...toView(record), existing: true } : null;
  }

  private async submitNew(body: CreateWorkspaceBody, digest: RequestDigest, caller?: Caller): Promise<WorkspaceView | ExistingWorkspaceView> {
    const request = requestFromBody(body, { allowLocalRepos: this.o.allowLocalRepos, maxPushTimeoutMs: this.o.deps.config.pushTimeoutMs }, caller);
    const plan = planJob(request, this.o.deps.config); // every input error, before anything is created
    if (body.callback) await this.o.notifier.checkCallback(body.callback.url);
    const id = plan.workspaceId;
    let release: () => void;
    try {
      release = this.queue.claimForSubmit(id);
    } catch (err) {
      // A job or POST holds the id: a twin of this POST, sent at once, may have just queued it.
      const twin = await this.repeated(id, digest);
      if (twin) return twin;
      throw err;
    }
    try {
      await this.lifecycle.flushUnsaved();
      // Continue the numbering of the id's log (events/event-seq.ts), before the record says queued.
      const firstSeq = nextSeq(await this.o.deps.store.readEvents(id));
      const spec = {
        id,
        repository: plan.repo.cloneUrl,
        configName: plan.configName,
        lightweight: plan.lightweight,
        owner: request.owner ?? null,
        request: digest,
      };
      const queued = await this.lifecycle.queue(spec).catch(async (err: unknown) => {
        if (err instanceof IllegalTransition) return (await this.repeated(id, digest)) ?? Promise.reject(workspaceExists(id));
        if (!(err instanceof WarmstartError && err.code === 'WORKSPACE_CONFLICT')) {
          this.o.logger.error({ workspaceId: id, err: describeError(err) }, 'could not record a new job; refused');
        }
        throw err;
      });
      if ('existing' in queued) return queued;
      const { record, previous } = queued;
      let resolveDone!: () => void;
      const done = new Promise<void>((r) => (resolveDone = r));
      const job: Job = {
        id,
        request,
        callback: body.callback,
        controller: new AbortController(),
        events: new JobEvents({ onBound: this.countBound }),
        firstSeq,
        state: 'queued',
        deleting: false,
        done,
        resolveDone,
      };
      this.o.metrics.jobStatus('queued');
      this.o.logger.info({ workspaceId: id, repository: record.repository, retry: previous !== null }, 'job queued');
      this.queue.enqueue(job);
      return toView(record);
    } finally {
      release();
    }
  }

  async get(id: string): Promise<WorkspaceView | null> {
    const record = await this.o.deps.store.load(id);
    return record ? toView(record) : null;
  }

  async list(): Promise<WorkspaceView[]> {
    const records = await this.o.deps.store.list((id, err) =>
      this.o.logger.warn({ workspaceId: id, err: describeError(err) }, 'workspace record unreadable: left out of the list'),
    );
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map(toView);
  }

  async remove(id: string, options: { purge: boolean }): Promise<WorkspaceView> {
    const { engine } = this.o.deps;
    const release = this.queue.claimForRemove(id);
    try {
      const record = await this.lifecycle.load(id);
      if (!record && !this.queue.get(id) && !(await engine.volumeExists(workspaceVolume(id)))) {
        throw new WarmstartError('WORKSPACE_NOT_FOUND', `no workspace ${id} on this node`);
      }
      const log = this.o.logger.child({ workspaceId: id });
      if (record) {
        try {
          await this.lifecycle.deleting(id);
        } catch (err) {
          // A purge removes the record anyway; without it the delete could not be recorded: refuse, change nothing.
          if (!options.purge) throw err;
          log.warn({ err: describeError(err) }, 'could not record the deletion; purging anyway');
        }
      }
      const job = this.queue.get(id);
      if (job) {
        job.deleting = true;
        job.controller.abort();
        if (this.queue.withdraw(job)) this.finish(job);
        else if (job.state === 'running') await job.done; // the pipeline stops at its next phase; the CLI is killed
      }
      await removeWorkspace({ ...this.o.deps, lifecycle: this.lifecycle }, id, options.purge);
      const last = options.purge ? this.lifecycle.asDeleting(record, id) : await this.lifecycle.deleting(id);
      log.info({ purge: options.purge }, 'workspace deleted');
      return toView(last);
    } finally {
      release();
    }
  }

  async *events(id: string, signal: AbortSignal, options: EventsOptions = {}): AsyncGenerator<WorkspaceEvent> {
    const { after } = options;
    const job = this.queue.get(id);
    if (job) {
      // Resuming from before this run: the earlier runs' rest from the log, then this run's from its history.
      if (after !== undefined && after < job.firstSeq - 1) yield* between(await this.o.deps.store.readEvents(id), after, job.firstSeq);
      if (!signal.aborted) yield* job.events.follow(signal, after ?? 0);
      return;
    }
    // A job of an earlier run, or one that is over: what the log holds.
    yield* between(await this.o.deps.store.readEvents(id), after ?? 0);
  }

  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] } {
    return this.queue.stats();
  }

  /** Cancels queued and running builds (shutdown); pushes are left to finish. */
  cancelBuilds(): void {
    for (const job of this.queue.all()) if (job.state !== 'pushing') job.controller.abort();
  }

  /** Resolves when every job, pushes included, is over, or after `ms`. */
  async drain(ms: number): Promise<boolean> {
    return settlesWithin(Promise.all(this.queue.all().map((j) => j.done)), ms);
  }

  /** A build slot for a prebuild (jobs/prebuild-manager.ts): see JobQueue.buildSlot. */
  buildSlot(signal: AbortSignal): Promise<() => void> {
    return this.queue.buildSlot(signal);
  }

  private async run(job: Job, freeSlot: () => void): Promise<void> {
    const log = this.o.logger.child({ workspaceId: job.id });
    const { deps, metrics } = this.o;
    let result: WorkspaceResult | null = null;
    try {
      log.info('job started');
      metrics.jobStatus('creating');
      const sink = sequencingSink(
        job.firstSeq,
        teeSinks(
          job.events,
          deps.store.eventLog(job.id, {
            onBound: this.countBound,
            onLost: (e, err) => log.warn({ event: e.type, err: describeError(err) }, 'event not recorded'),
          }),
          {
            emit: (e) => {
              if (e.type === 'phase-end' && e.phase && e.ms !== undefined) metrics.phase(e.phase, e.ms);
              if (e.type === 'phase-end' && e.status === 'failed') log.warn({ phase: e.phase }, 'phase failed');
              // Counted when it is recorded, so /metrics agrees with the record as soon as it is saved.
              if (e.type === 'push' && e.status) metrics.push(e.status, e.text ?? null, e.ms ?? null);
            },
          },
        ),
        this.countBound,
      );
      const prepared = await this.o.pipeline(deps, job.request, sink, {
        signal: job.controller.signal,
        record: {
          started: () => this.unlessDeleted(job, this.lifecycle.start(job.id)),
          settled: (r) => this.unlessDeleted(job, this.lifecycle.settle(job.id, r)),
        },
      });
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
   * A DELETE took the workspace over while its job ran (the record says
   * `deleting`): the job goes on to its cancelled end unrecorded, and the
   * DELETE writes the last record.
   */
  private async unlessDeleted(job: Job, transition: Promise<unknown>): Promise<void> {
    try {
      await transition;
    } catch (err) {
      if (!(err instanceof IllegalTransition && job.deleting)) throw err;
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
      ? {
          code: 'STATE_WRITE_FAILED' as const,
          message: 'the agent could not write the workspace state (is the state directory full?)',
          detail: (err as WarmstartError).detail ?? describeError(err),
        }
      : { code: 'INTERNAL' as const, message: 'the job failed unexpectedly', detail: describeError(err) };
    const failed = await this.kept(this.lifecycle.fail(job.id, error)).catch((e: unknown) => {
      log.error({ err: describeError(e) }, 'could not read the workspace record to mark it failed');
      return null;
    });
    if (failed)
      await this.notify(job, 'provisioning-failed').catch((e: unknown) => log.error({ err: describeError(e) }, 'could not queue the callback'));
  }

  private recordResult(result: WorkspaceResult): void {
    const { metrics } = this.o;
    metrics.jobStatus(result.outcome);
    metrics.cache(result.cache.hit, result.cache.reason);
    if (result.cache.stepsTotal !== null) metrics.buildSteps(result.cache.stepsCached ?? 0, result.cache.stepsTotal);
  }

  /** The control plane hears ready (ready or recovery) or provisioning-failed, once. */
  private async notify(job: Job, kind: NotificationKind): Promise<void> {
    if (!job.callback || job.deleting) return;
    const view = await this.get(job.id);
    if (!view) return;
    await this.o.notifier.notify(job.callback, view, kind);
  }

  /** The push's result joins the record of the outcome it belongs to (not one a DELETE took over since). */
  private async keepPushResult(id: string, outcome: WorkspaceResult['outcome'], push: WorkspaceResult['push']): Promise<void> {
    await this.kept(this.lifecycle.pushSettled(id, outcome, push)).catch((err: unknown) => {
      this.o.logger.error({ workspaceId: id, err: describeError(err) }, 'could not record the push result');
    });
  }

  /**
   * What a transition of what has happened left: the record (kept in memory,
   * and logged, when the disk refused it), or null when the record was
   * gone or in no status to take it (being deleted).
   */
  private async kept(transition: Promise<{ record: WorkspaceRecord; writeError: unknown }>): Promise<WorkspaceRecord | null> {
    try {
      const { record, writeError } = await transition;
      if (writeError) {
        this.o.logger.error(
          { workspaceId: record.id, status: record.status, err: describeError(writeError) },
          'could not write the workspace record; kept in memory, will retry',
        );
      }
      return record;
    } catch (err) {
      if (err instanceof IllegalTransition) return null;
      throw err;
    }
  }

  private finish(job: Job): void {
    job.events.close();
    this.queue.forget(job);
    job.resolveDone();
  }
}
