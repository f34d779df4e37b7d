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
  /** a push's outcome (and its duration when known); a failed or timed-out one also counts under its reason's code */
  push(status: string, reason?: string | null, ms?: number | null): void;
  /** one answered HTTP request: its route's pattern (not the URL), method and status */
  httpRequest(method: string, route: string, status: number): void;
  /** one callback delivery attempt: `delivered`, `refused` (4xx, dropped), `retry`, `given-up`, `blocked` (URL refused) */
  callbackAttempt(outcome: 'delivered' | 'refused' | 'retry' | 'given-up' | 'blocked'): void;
  buildSteps(cached: number, total: number): void;
  /** event log lines cut to length or dropped by a cap (events/event-bounds.ts) */
  eventLines(action: BoundAction, lines: number): void;
  /** current queue depth / running jobs / undelivered callbacks, sampled on scrape */
  setGauges(values: { running: number; queued: number; pushing: number; callbacksPending?: number }): void;
  /** Prometheus text format */
  render(): Promise<{ contentType: string; body: string }>;
}
