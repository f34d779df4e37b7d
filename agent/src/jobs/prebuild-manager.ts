import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { CreatePrebuildBody, PrebuildView } from '../../../shared/src/api.js';
import { describeError, toErrorBody, WarmstartError } from '../errors.js';
import type { EventSink } from '../events/events.js';
import type { PipelineDeps } from '../workspace/deps.js';
import { runPrebuild } from '../workspace/prebuild.js';
import { planPrebuild, type PrebuildRequest } from '../workspace/prebuild-plan.js';
import { parseRepository } from '../workspace/repository.js';
import { settlesWithin } from '../util/with-timeout.js';

/** Where prebuilds get a build slot: the workspace jobs' (LocalJobManager.buildSlot). */
export interface BuildSlots {
  buildSlot(signal: AbortSignal): Promise<() => void>;
}

export interface PrebuildManagerOptions {
  deps: PipelineDeps;
  slots: BuildSlots;
  logger: Logger;
  /** WARMSTART_ALLOW_LOCAL_REPOS */
  allowLocalRepos: boolean;
  /** finished prebuilds kept for GET; the oldest go first (default 200) */
  keep?: number;
}

interface Entry {
  view: PrebuildView;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Runs prebuilds for the HTTP API, each in one of the node's build slots.
 * Their views live in memory only: a prebuild keeps nothing on disk, and
 * after a restart its id is unknown (404); the registry holds what it made.
 * The registry password of a request lives only in the closure of its run.
 */
export class PrebuildManager {
  private readonly entries = new Map<string, Entry>();
  private acceptingJobs = true;

  constructor(private readonly o: PrebuildManagerOptions) {}

  /** Validates completely (400 for bad input, nothing created), then queues the prebuild. */
  submit(body: CreatePrebuildBody): PrebuildView {
    if (!this.acceptingJobs) throw new WarmstartError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
    if (!this.o.allowLocalRepos && parseRepository(body.repository, { cwd: '/' }).kind === 'local') {
      throw new WarmstartError(
        'INVALID_REPOSITORY',
        'local paths and file:// URLs are refused by this agent (set WARMSTART_ALLOW_LOCAL_REPOS=1 to allow them)',
      );
    }
    const request: PrebuildRequest = {
      repository: body.repository,
      configName: body.configName ?? null,
      cache: body.cache
        ? { registry: body.cache.registry, ref: body.cache.ref ?? null, username: body.cache.username ?? null, password: body.cache.password ?? null }
        : {},
      cwd: '/',
    };
    const { plan } = planPrebuild(request, this.o.deps.config, 'prebuild-check');
    const now = new Date().toISOString();
    const view: PrebuildView = {
      id: randomUUID(),
      status: 'queued',
      repository: plan.repo.cloneUrl,
      configName: plan.configName,
      createdAt: now,
      updatedAt: now,
      result: null,
    };
    const controller = new AbortController();
    const entry: Entry = { view, controller, done: Promise.resolve() };
    entry.done = this.run(entry, request);
    this.entries.set(view.id, entry);
    this.trim();
    this.o.logger.info({ prebuildId: view.id, repository: view.repository }, 'prebuild queued');
    return { ...view };
  }

  get(id: string): PrebuildView | null {
    const entry = this.entries.get(id);
    return entry ? { ...entry.view } : null;
  }

  stopAccepting(): void {
    this.acceptingJobs = false;
  }

  /** Cancels queued and running prebuilds (shutdown); each still removes what it made. */
  cancelAll(): void {
    for (const e of this.entries.values()) e.controller.abort();
  }

  /** Resolves when every prebuild is over, or after `ms`. */
  async drain(ms: number): Promise<boolean> {
    return settlesWithin(Promise.all([...this.entries.values()].map((e) => e.done)), ms);
  }

  private async run(entry: Entry, request: PrebuildRequest): Promise<void> {
    const { view, controller } = entry;
    const log = this.o.logger.child({ prebuildId: view.id });
    let free: (() => void) | null = null;
    try {
      free = await this.o.slots.buildSlot(controller.signal);
      this.update(view, { status: 'running' });
      log.info('prebuild started');
      const result = await runPrebuild(this.o.deps, request, phaseFailures(log), { signal: controller.signal });
      this.update(view, { status: result.status, result });
      log.info({ status: result.status, reason: result.reason, pushed: result.pushed, totalMs: result.timings.totalMs }, 'prebuild finished');
    } catch (err) {
      // Cancelled while queued, or thrown before anything was made (runPrebuild reports everything later as its result).
      const error =
        err instanceof WarmstartError
          ? toErrorBody(err)
          : { code: 'INTERNAL' as const, message: 'the prebuild failed unexpectedly', detail: describeError(err) };
      log.warn({ err: describeError(err) }, 'prebuild failed');
      this.update(view, {
        status: 'failed',
        result: {
          status: 'failed',
          reason: error.message,
          repository: view.repository,
          configName: view.configName,
          refs: { moving: null, exact: null },
          pushed: [],
          push: null,
          timings: { buildMs: null, pushMs: null, totalMs: 0 },
          error,
        },
      });
    } finally {
      free?.();
    }
  }

  private update(view: PrebuildView, change: Partial<PrebuildView>): void {
    Object.assign(view, change, { updatedAt: new Date().toISOString() });
  }

  /** Forgets the oldest finished prebuilds beyond `keep`. */
  private trim(): void {
    const keep = this.o.keep ?? 200;
    let over = this.entries.size - keep;
    for (const [id, e] of this.entries) {
      if (over <= 0) break;
      if (e.view.result !== null) {
        this.entries.delete(id);
        over -= 1;
      }
    }
  }
}

/** The events of a prebuild go nowhere but the agent's log, and only a failed phase. */
function phaseFailures(log: Logger): EventSink {
  return {
    emit: (e) => {
      if (e.type === 'phase-end' && e.status === 'failed') log.warn({ phase: e.phase }, 'prebuild phase failed');
    },
  };
}
