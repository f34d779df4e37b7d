import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BoundAction } from '../events/event-bounds.js';
import type { Metrics } from './metrics.js';

/** Options for {@link PromMetrics}. */
export interface PromMetricsOptions {
  /** Also export the process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
  /** `warmstart_build_info{version,node}`: the agent's version (default: not exported) */
  version?: string;
}

/** A push takes from a tenth of a second (layers already there) to minutes. */
const PUSH_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Phase durations run from milliseconds (validate) to tens of minutes (a cold build). */
const PHASE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800];

/**
 * A cache reason is free text ("REGISTRY_AUTH_FAILED: denied", "image-based
 * config: ..."); as a label it would grow without bound. Keep only the error
 * code in front of the first ':', `other` for prose, `none` for no reason.
 */
export function reasonBucket(reason: string | null): string {
  if (reason === null || reason.trim() === '') return 'none';
  const prefix = reason.split(':', 1)[0]?.trim() ?? '';
  return /^[A-Z][A-Z0-9_]{1,63}$/.test(prefix) ? prefix : 'other';
}

/** Prometheus metrics on a registry of their own (never prom-client's global one). */
export class PromMetrics implements Metrics {
  readonly registry = new Registry();

  private readonly jobs = new Counter({
    name: 'warmstart_jobs_total',
    help: 'Workspace jobs by final status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly phases = new Histogram({
    name: 'warmstart_phase_duration_seconds',
    help: 'Duration of each prepare phase',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });
  private readonly caches = new Counter({
    name: 'warmstart_cache_total',
    help: 'Cache lookups by result (exact, layers, miss, disabled) and reason code',
    labelNames: ['hit', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly pushes = new Counter({
    name: 'warmstart_pushes_total',
    help: 'Cache pushes by outcome',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly pushFailures = new Counter({
    name: 'warmstart_push_failures_total',
    help: 'Pushes that failed or timed out, by the error code in front of their reason (REGISTRY_AUTH_FAILED: the credentials could not be had)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  private readonly stepsCached = new Counter({
    name: 'warmstart_build_steps_cached_total',
    help: 'Build steps answered from the layer cache',
    registers: [this.registry],
  });
  private readonly stepsTotal = new Counter({
    name: 'warmstart_build_steps_total',
    help: 'Build steps run or taken from cache',
    registers: [this.registry],
  });
  private readonly eventBounds = new Counter({
    name: 'warmstart_event_lines_total',
    help: 'Event log lines cut to length (cut) or dropped by the in-memory history cap (dropped-history) or the events.ndjson cap (dropped-file)',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  private readonly running = new Gauge({
    name: 'warmstart_jobs_running',
    help: 'Jobs preparing a workspace now',
    registers: [this.registry],
  });
  private readonly queued = new Gauge({
    name: 'warmstart_jobs_queued',
    help: 'Jobs waiting for a build slot',
    registers: [this.registry],
  });
  private readonly pushing = new Gauge({
    name: 'warmstart_pushes_running',
    help: 'Cache pushes running in the background',
    registers: [this.registry],
  });

  private readonly pushDuration = new Histogram({
    name: 'warmstart_push_duration_seconds',
    help: 'How long cache pushes took, by outcome',
    labelNames: ['status'],
    buckets: PUSH_BUCKETS,
    registers: [this.registry],
  });

  private readonly http = new Counter({
    name: 'warmstart_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'],
    registers: [this.registry],
  });

  private readonly callbacks = new Counter({
    name: 'warmstart_callback_attempts_total',
    help: 'Callback delivery attempts to the control plane, by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  private readonly callbacksPending = new Gauge({
    name: 'warmstart_callbacks_pending',
    help: 'Callbacks not yet delivered (the outbox depth)',
    registers: [this.registry],
  });

  constructor(options: PromMetricsOptions = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    if (options.version !== undefined) {
      new Gauge({
        name: 'warmstart_build_info',
        help: 'The agent version and Node runtime (always 1)',
        labelNames: ['version', 'node'],
        registers: [this.registry],
      }).set({ version: options.version, node: process.version }, 1);
    }
  }

  jobStatus(status: string): void {
    this.jobs.inc({ status });
  }

  phase(name: string, ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.phases.observe({ phase: name }, ms / 1000);
  }

  cache(hit: string, reason: string | null): void {
    this.caches.inc({ hit, reason: reasonBucket(reason) });
  }

  push(status: string, reason: string | null = null, ms: number | null = null): void {
    this.pushes.inc({ status });
    if (ms !== null && Number.isFinite(ms) && ms >= 0) this.pushDuration.observe({ status }, ms / 1000);
    if (status === 'failed' || status === 'timeout') this.pushFailures.inc({ reason: reasonBucket(reason) });
  }

  buildSteps(cached: number, total: number): void {
    // prom-client throws on a negative increment; a bad count is not worth a failed job.
    if (Number.isFinite(cached) && cached > 0) this.stepsCached.inc(cached);
    if (Number.isFinite(total) && total > 0) this.stepsTotal.inc(total);
  }

  eventLines(action: BoundAction, lines: number): void {
    if (Number.isFinite(lines) && lines > 0) this.eventBounds.inc({ action }, lines);
  }

  setGauges(values: { running: number; queued: number; pushing: number; callbacksPending?: number }): void {
    this.running.set(values.running);
    this.queued.set(values.queued);
    this.pushing.set(values.pushing);
    if (values.callbacksPending !== undefined) this.callbacksPending.set(values.callbacksPending);
  }

  httpRequest(method: string, route: string, status: number): void {
    this.http.inc({ method, route, status: String(status) });
  }

  callbackAttempt(outcome: 'delivered' | 'refused' | 'retry' | 'given-up' | 'blocked'): void {
    this.callbacks.inc({ outcome });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
