/**
 * Followers waiting for "something new" (an event history, a job's record):
 * each wait ends at the next `wake()` or when its own signal aborts, and
 * leaves no listener behind on the signal either way.
 */
export class Wakeup {
  private waiters: Array<() => void> = [];

  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }
}
