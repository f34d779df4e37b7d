/**
 * Tasks that share a key run one at a time, in the order they were given;
 * tasks with different keys run side by side. A task starts once the one
 * before it has settled either way, and its own outcome (value or error)
 * goes to its caller only. A key whose queue has drained is forgotten.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined, // the caller gets the error through `result`; the queue only waits for it
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Settles when every task given for `key` so far has settled. */
  idle(key: string): Promise<void> {
    return (this.tails.get(key) ?? Promise.resolve()).then(() => undefined);
  }

  /** Keys with a task queued or running. */
  size(): number {
    return this.tails.size;
  }
}
