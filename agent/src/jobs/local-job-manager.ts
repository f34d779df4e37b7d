import type { Logger } from 'pino';
import type { CreateWorkspaceBody, WorkspaceView } from '../../../shared/src/api.js';
import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import type { CallbackOutbox } from '../callbacks/outbox.js';
import { describeError, WarmstartError } from '../errors.js';
import { teeSinks, type WorkspaceEvent } from '../events/events.js';
import type { Metrics } from '../metrics/metrics.js';
import type { WorkspaceRecord, WorkspaceStatus } from '../state/workspace-store.js';
import { planJob } from '../workspace/plan.js';
import { prepareWorkspace, type PipelineDeps } from '../workspace/pipeline.js';
import { removeWorkspace, workspaceVolume } from '../workspace/remove.js';
import type { PrepareRequest } from '../workspace/request.js';
import { JobEvents } from './event-hub.js';
import type { JobManager } from './job-manager.js';
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

const TERMINAL: ReadonlySet<WorkspaceStatus> = new Set(['ready', 'recovery', 'failed']);

/**
 * Runs workspace jobs on this node: a FIFO queue with a concurrency limit, at
 * most one job per workspace, the pipeline for each, then callbacks. Secrets
 * of a job (git token, registry password, callback token) live only in memory
 * here; records on disk never hold them.
 */
export class LocalJobManager implements JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private running = 0;
  private acceptingJobs = true;

  constructor(private readonly o: LocalJobManagerOptions) {}

  get accepting(): boolean {
    return this.acceptingJobs;
  }

  stopAccepting(): void {
    this.acceptingJobs = false;
  }

  async submit(body: CreateWorkspaceBody): Promise<WorkspaceView> {
    if (!this.acceptingJobs) throw new WarmstartError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
    const request = requestFromBody(body, this.o.allowLocalRepos);
    const plan = planJob(request, this.o.deps.config); // every input error, before anything is created
    if (this.jobs.has(plan.workspaceId) || (await this.o.deps.store.load(plan.workspaceId))) {
      throw new WarmstartError('WORKSPACE_EXISTS', `workspace ${plan.workspaceId} already exists on this node`);
    }
    const now = new Date().toISOString();
    const record: WorkspaceRecord = {
      id: plan.workspaceId,
      repository: plan.repo.cloneUrl,
      configName: plan.configName,
      lightweight: plan.lightweight,
      status: 'queued',
      result: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.o.deps.store.save(record);
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const job: Job = {
      id: plan.workspaceId,
      request,
      callback: body.callback,
      controller: new AbortController(),
      events: new JobEvents(),
      state: 'queued',
      deleting: false,
      done,
      resolveDone,
    };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.o.metrics.jobStatus('queued');
    this.o.logger.info({ workspaceId: job.id, repository: record.repository }, 'job queued');
    this.pump();
    return toView(record);
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
    const record = await store.load(id);
    if (!record && !this.jobs.has(id) && !(await engine.volumeExists(workspaceVolume(id)))) {
      throw new WarmstartError('WORKSPACE_NOT_FOUND', `no workspace ${id} on this node`);
    }
    const log = this.o.logger.child({ workspaceId: id });
    if (record) await store.save({ ...record, status: 'deleting', updatedAt: new Date().toISOString() });
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
      queued: this.queue.length,
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

  private pump(): void {
    while (this.running < this.o.maxConcurrent && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running += 1;
      job.state = 'running';
      void this.run(job);
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
    try {
      log.info('job started');
      metrics.jobStatus('creating');
      const sink = teeSinks(job.events, deps.store.eventLog(job.id), {
        emit: (e) => {
          if (e.type === 'phase-end' && e.phase && e.ms !== undefined) metrics.phase(e.phase, e.ms);
          if (e.type === 'phase-end' && e.status === 'failed') log.warn({ phase: e.phase }, 'phase failed');
          // Counted when it is recorded, so /metrics agrees with the record as soon as it is saved.
          if (e.type === 'push' && e.status) metrics.push(e.status);
        },
      });
      const prepared = await prepareWorkspace(deps, job.request, sink, { signal: job.controller.signal });
      const result = prepared.result;
      this.recordResult(result);
      log.info({ outcome: result.outcome, cacheHit: result.cache.hit, readyMs: result.timings.ready }, 'job finished');
      job.events.close();
      freeSlot(); // the push does not hold a build slot
      job.state = 'pushing';
      await this.notify(job, result);
      const push = await prepared.push;
      log.info({ pushStatus: push.status, pushMs: push.ms, reason: push.reason }, 'push settled');
    } catch (err) {
      // Input errors were caught in submit; anything here is unexpected.
      log.error({ err: describeError(err) }, 'job failed unexpectedly');
      await this.markFailed(job.id, err);
    } finally {
      freeSlot();
      this.finish(job);
    }
  }

  private recordResult(result: WorkspaceResult): void {
    const { metrics } = this.o;
    metrics.jobStatus(result.outcome);
    metrics.cache(result.cache.hit, result.cache.reason);
    if (result.cache.stepsTotal !== null) metrics.buildSteps(result.cache.stepsCached ?? 0, result.cache.stepsTotal);
  }

  /** The control plane hears ready (ready or recovery) or provisioning-failed, once. */
  private async notify(job: Job, result: WorkspaceResult): Promise<void> {
    if (!job.callback || job.deleting) return;
    const view = await this.get(job.id);
    if (!view) return;
    const kind = result.outcome === 'failed' ? 'provisioning-failed' : 'ready';
    const base = job.callback.url.replace(/\/+$/, '');
    await this.o.outbox.enqueue({
      url: `${base}/workspaces/${encodeURIComponent(job.id)}/${kind}`,
      token: job.callback.token,
      body: { workspaceId: job.id, status: view.status, workspace: view },
      kind,
      workspaceId: job.id,
    });
  }

  private async markFailed(id: string, err: unknown): Promise<void> {
    const record = await this.o.deps.store.load(id).catch(() => null);
    if (!record || TERMINAL.has(record.status) || record.status === 'deleting') return;
    await this.o.deps.store
      .save({
        ...record,
        status: 'failed',
        error: { code: 'INTERNAL', message: 'the job failed unexpectedly', detail: describeError(err) },
        updatedAt: new Date().toISOString(),
      })
      .catch(() => undefined);
  }

  private finish(job: Job): void {
    job.events.close();
    this.jobs.delete(job.id);
    job.resolveDone();
  }
}

function blankRecord(id: string): WorkspaceRecord {
  const now = new Date().toISOString();
  return { id, repository: '', configName: null, lightweight: false, status: 'deleting', result: null, createdAt: now, updatedAt: now };
}

