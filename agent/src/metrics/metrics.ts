import type { BoundAction } from '../events/event-bounds.js';

/**
 * What the agent counts for Prometheus. The job side calls these; the server
 * exposes them at /metrics. `PromMetrics` is the implementation (prom-client,
 * its own registry: no global state).
 */
export interface Metrics {
  jobStatus(status: string): void;
  phase(name: string, ms: number): void;
  cache(hit: string, reason: string | null): void;
  /** a push's outcome; a failed or timed-out one also counts under its reason's code */
  push(status: string, reason?: string | null): void;
  buildSteps(cached: number, total: number): void;
  /** event log lines cut to length or dropped by a cap (events/event-bounds.ts) */
  eventLines(action: BoundAction, lines: number): void;
  /** current queue depth / running jobs, sampled on scrape */
  setGauges(values: { running: number; queued: number; pushing: number }): void;
  /** Prometheus text format */
  render(): Promise<{ contentType: string; body: string }>;
}
