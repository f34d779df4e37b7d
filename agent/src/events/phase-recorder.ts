import type { Outcome, PushStatus } from '../../../shared/src/workspace-result.js';
import type { EventSink, PhaseName, WorkspaceEvent } from './events.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Test seam: `WARMSTART_FAILPOINTS=pause:clone=5000,pause:volume=2000` makes
 * a phase wait that many ms right after its `phase-start` event, before its
 * work begins, so a test can act at a phase that would otherwise be over in a
 * few ms (kill the agent, fill its disk, delete the workspace). A testing aid
 * only: unset (the normal case) it does nothing at all.
 */
export type Failpoints = ReadonlyMap<string, number>;

const NO_FAILPOINTS: Failpoints = new Map();

/** Parses WARMSTART_FAILPOINTS; an entry it does not understand is an error, not a silent no-op. */
export function parseFailpoints(raw: string | undefined): Failpoints {
  if (raw === undefined || raw.trim() === '') return NO_FAILPOINTS;
  const points = new Map<string, number>();
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^pause:([a-z][a-z0-9-]*)=(\d{1,7})$/.exec(entry);
    if (!m) throw new Error(`WARMSTART_FAILPOINTS: cannot read '${entry}' (expected pause:<phase>=<ms>, comma-separated)`);
    points.set(m[1]!, Number(m[2]));
  }
  return points;
}

/** The process's failpoints: read once, when the agent loads (a bad value stops it there). */
const FROM_ENV: Failpoints = parseFailpoints(process.env.WARMSTART_FAILPOINTS);

/**
 * Names, times and records every phase of one workspace job; the timings it
 * collects are the result's `timings`.
 */
export class PhaseRecorder {
  readonly timings: Record<string, number> = {};
  private readonly startedAt: number;

  constructor(
    private readonly workspaceId: string,
    private readonly sink: EventSink,
    private readonly now: () => number = () => performance.now(),
    private readonly failpoints: Failpoints = FROM_ENV,
  ) {
    this.startedAt = now();
  }

  /** Runs fn as the named phase; its duration is recorded even when it throws. */
  async phase<T>(name: PhaseName, fn: () => Promise<T>): Promise<T> {
    const t0 = this.now();
    this.send({ type: 'phase-start', phase: name });
    let status: 'ok' | 'failed' = 'ok';
    try {
      const pause = this.failpoints.get(name);
      if (pause !== undefined) await new Promise((r) => setTimeout(r, pause));
      return await fn();
    } catch (err) {
      status = 'failed';
      throw err;
    } finally {
      const ms = Math.round(this.now() - t0);
      this.timings[name] = (this.timings[name] ?? 0) + ms;
      this.send({ type: 'phase-end', phase: name, ms, status });
    }
  }

  /** Milliseconds since the job began. */
  elapsed(): number {
    return Math.round(this.now() - this.startedAt);
  }

  log(text: string, phase?: PhaseName): void {
    this.send(phase === undefined ? { type: 'log', text } : { type: 'log', text, phase });
  }

  note(text: string, phase?: PhaseName): void {
    this.send(phase === undefined ? { type: 'note', text } : { type: 'note', text, phase });
  }

  /** The workspace's outcome, `ms` from the start. */
  outcome(status: Outcome, ms: number): void {
    this.send({ type: 'outcome', status, ms });
  }

  /** The background push settled. */
  push(status: PushStatus, reason: string | null, ms: number | null): void {
    this.send({ type: 'push', status, ...(reason ? { text: reason } : {}), ...(ms !== null ? { ms } : {}) });
  }

  private send(event: DistributiveOmit<WorkspaceEvent, 'ts' | 'workspaceId'>): void {
    this.sink.emit({ ts: new Date().toISOString(), workspaceId: this.workspaceId, ...event } as WorkspaceEvent);
  }
}
