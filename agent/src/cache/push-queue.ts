import type { PushResult } from '../../../shared/src/workspace-result.js';

interface Waiting {
  task: () => Promise<PushResult>;
  resolve: (r: PushResult) => void;
}

/**
 * One push per ref at a time on this node. A push that arrives while another
 * for the same ref runs waits; a newer one replaces a waiting older one, which
 * settles as skipped (the newer image carries everything the older had).
 */
export class PushQueue {
  private readonly running = new Set<string>();
  private readonly waiting = new Map<string, Waiting>();

  enqueue(ref: string, task: () => Promise<PushResult>): Promise<PushResult> {
    return new Promise<PushResult>((resolve) => {
      if (!this.running.has(ref)) {
        this.start(ref, { task, resolve });
        return;
      }
      const older = this.waiting.get(ref);
      older?.resolve({ status: 'skipped', ref, reason: 'superseded by a newer push of the same ref', ms: null });
      this.waiting.set(ref, { task, resolve });
    });
  }

  /** Refs with a push running now. */
  active(): string[] {
    return [...this.running];
  }

  private start(ref: string, job: Waiting): void {
    this.running.add(ref);
    // Not awaited: the queue runs in the background. The chain cannot reject:
    // a failed task becomes a failed result before the next step.
    void job
      .task()
      .catch((err: unknown): PushResult => ({ status: 'failed', ref, reason: String(err), ms: null }))
      .then((result) => {
        job.resolve(result);
        this.running.delete(ref);
        const next = this.waiting.get(ref);
        if (next) {
          this.waiting.delete(ref);
          this.start(ref, next);
        }
      });
  }
}
