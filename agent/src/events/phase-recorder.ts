import type { EventSink } from './events.js';

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
  ) {
    this.startedAt = now();
  }

  /** Runs fn as the named phase; its duration is recorded even when it throws. */
  async phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = this.now();
    this.emit('phase-start', { phase: name });
    let status = 'ok';
    try {
      return await fn();
    } catch (err) {
      status = 'failed';
      throw err;
    } finally {
      const ms = Math.round(this.now() - t0);
      this.timings[name] = (this.timings[name] ?? 0) + ms;
      this.emit('phase-end', { phase: name, ms, status });
    }
  }

  /** Milliseconds since the job began. */
  elapsed(): number {
    return Math.round(this.now() - this.startedAt);
  }

  log(text: string, phase?: string): void {
    this.emit('log', phase === undefined ? { text } : { text, phase });
  }

  note(text: string, phase?: string): void {
    this.emit('note', phase === undefined ? { text } : { text, phase });
  }

  emit(type: 'phase-start' | 'phase-end' | 'log' | 'outcome' | 'push' | 'note', fields: { phase?: string; ms?: number; text?: string; status?: string }): void {
    this.sink.emit({ ts: new Date().toISOString(), workspaceId: this.workspaceId, type, ...fields });
  }
}
