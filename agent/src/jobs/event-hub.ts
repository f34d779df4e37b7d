import type { EventSink, WorkspaceEvent } from '../events/events.js';

/**
 * The live events of one running job: every event is kept in order and
 * followers read them by index, so a follower that joins late misses nothing
 * and one that joins early waits without polling.
 */
export class JobEvents implements EventSink {
  private readonly history: WorkspaceEvent[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;

  emit(event: WorkspaceEvent): void {
    if (this.closed) return;
    this.history.push(event);
    this.wake();
  }

  /** No more events: followers finish after the last one. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  async *follow(signal: AbortSignal): AsyncGenerator<WorkspaceEvent> {
    let next = 0;
    while (!signal.aborted) {
      while (next < this.history.length) yield this.history[next++]!;
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }
}
