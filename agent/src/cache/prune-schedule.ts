/**
 * The daemon's retention timer: runs agent/src/cache/prune-run.ts every
 * interval against the node's cache registry, logs what went, counts it in
 * `warmstart_cache_pruned_total`, and stops with the daemon. One run at a
 * time; a failed run is logged and the next one is tried at its time.
 */
import { Counter, type Registry } from 'prom-client';
import { describeError } from '../errors.js';
import type { PruneScheduleConfig } from '../config/prune-config.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import type { OciApi } from '../registry/oci-api.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { parseCacheRegistry } from './ref.js';
import { assertPrunable, inUseRefs, pruneRegistry, type PruneReport } from './prune-run.js';

export interface PruneLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PruneScheduleOptions {
  config: PruneScheduleConfig;
  /** HOST[:PORT][/NAMESPACE] */
  registry: string;
  credentials: () => Promise<RegistryCredentials | null>;
  store: Pick<WorkspaceStore, 'list'>;
  logger: PruneLogger;
  metrics?: Registry;
  /** the first run's delay; default one interval */
  firstRunMs?: number;
  /** the agent's registry client (agent.ts), so a run reaches the registry as the agent's other calls do; absent: a default one */
  api?: OciApi | undefined;
}

export interface PruneSchedule {
  /** clears the timer and waits for a run under way */
  stop(): Promise<void>;
  /** the reports so far, newest last (for tests and logs) */
  readonly runs: PruneReport[];
}

export function startPruneSchedule(o: PruneScheduleOptions): PruneSchedule {
  const { host, namespace } = parseCacheRegistry(o.registry);
  assertPrunable(host);
  const pruned = o.metrics
    ? new Counter({
        name: 'warmstart_cache_pruned_total',
        help: 'Exact cache images removed by scheduled retention, by result',
        labelNames: ['result'] as const,
        registers: [o.metrics],
      })
    : null;
  const runs: PruneReport[] = [];
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;

  const runOnce = async (): Promise<void> => {
    try {
      const report = await pruneRegistry({
        host,
        namespace,
        policy: { keep: o.config.keep, olderThanMs: o.config.olderThanMs, now: new Date() },
        dryRun: false,
        ...(o.api ? { api: o.api } : {}),
        creds: await o.credentials(),
        inUse: await inUseRefs(o.store),
      });
      runs.push(report);
      for (const r of report.removed) pruned?.inc({ result: r.deleted ? 'deleted' : 'failed' });
      o.logger.info(
        {
          registry: o.registry,
          removed: report.removed.filter((r) => r.deleted).map((r) => `${r.repository}:${r.tags.join(',')}`),
          failed: report.removed.filter((r) => !r.deleted).map((r) => `${r.repository}:${r.tags.join(',')}: ${r.error ?? ''}`),
          spared: report.spared.length,
          errors: report.errors,
        },
        'cache prune',
      );
    } catch (err) {
      o.logger.warn({ registry: o.registry, error: describeError(err) }, 'cache prune failed');
    }
  };
  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = null;
        schedule(o.config.intervalMs);
      });
    }, ms);
    timer.unref();
  };
  schedule(o.firstRunMs ?? o.config.intervalMs);
  return {
    runs,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
