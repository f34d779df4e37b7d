import { WarmstartError } from '../errors.js';

/** What the queue needs of a job. */
export interface QueuedJob {
  readonly id: string;
  state: 'queued' | 'running' | 'pushing';
  /** settles when the job, push included, is over */
  readonly done: Promise<void>;
}

export interface JobQueueOptions<J> {
  /** WARMSTART_MAX_CONCURRENT_BUILDS */
  maxConcurrent: number;
  /** Runs a job that got a build slot; `free` gives the slot back (once; the queue frees it after the run at the latest). */
  run(job: J, free: () => void): Promise<void>;
}

/** 409 for an id that has a job, or a POST or DELETE at work on it. */
export function workspaceExists(id: string): WarmstartError {
  return new WarmstartError('WORKSPACE_EXISTS', `workspace ${id} already exists on this node`);
}

/**
 * Admission and concurrency of this node's builds: whether jobs are taken at
 * all (not once shutting down), at most one job, POST or DELETE at work per
 * workspace id, and a FIFO queue that runs `maxConcurrent` builds at once.
 * Prebuilds take their slots from the same limit (buildSlot).
 */
export class JobQueue<J extends QueuedJob> {
  private readonly jobs = new Map<string, J>();
  private readonly waiting: J[] = [];
  /** builds other than workspace jobs (prebuilds) waiting for a slot */
  private readonly slotWaiters: Array<() => void> = [];
  private running = 0;
  private open = true;
  /** ids a POST is working on right now (between its first await and its end) */
  private readonly submitting = new Set<string>();
  /** ids a DELETE is working on right now, with how many DELETEs */
  private readonly removing = new Map<string, number>();

  constructor(private readonly o: JobQueueOptions<J>) {}

  get accepting(): boolean {
    return this.open;
  }

  stopAccepting(): void {
    this.open = false;
  }

  /** Throws SHUTTING_DOWN once the agent stopped taking jobs. */
  admit(): void {
    if (!this.open) throw new WarmstartError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
  }

  /**
   * Claims `id` for a POST, before its first await: two POSTs of one id at
   * once make one job. Throws WORKSPACE_EXISTS while a job, POST or DELETE
   * holds it. Resolves with the release.
   */
  claimForSubmit(id: string): () => void {
    if (this.jobs.has(id) || this.submitting.has(id) || this.removing.has(id)) throw workspaceExists(id);
    this.submitting.add(id);
    return () => this.submitting.delete(id);
  }

  /** Counts a DELETE at work on `id` (a POST meanwhile is refused); returns the release. */
  claimForRemove(id: string): () => void {
    this.removing.set(id, (this.removing.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.removing.get(id) ?? 1) - 1;
      if (left > 0) this.removing.set(id, left);
      else this.removing.delete(id);
    };
  }

  get(id: string): J | undefined {
    return this.jobs.get(id);
  }

  all(): J[] {
    return [...this.jobs.values()];
  }

  /** Takes the job and runs it once a slot is free. */
  enqueue(job: J): void {
    this.jobs.set(job.id, job);
    this.waiting.push(job);
    this.pump();
  }

  /** Takes a job out of the waiting line; true if it was there (it never ran). */
  withdraw(job: J): boolean {
    const i = this.waiting.indexOf(job);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    return true;
  }

  /** The job is over: its id is free again. */
  forget(job: J): void {
    this.jobs.delete(job.id);
  }

  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] } {
    const all = this.all();
    return {
      running: this.running,
      queued: this.waiting.length + this.slotWaiters.length,
      pushing: all.filter((j) => j.state === 'pushing').length,
      activeWorkspaces: all.map((j) => j.id),
    };
  }

  /**
   * Waits for one of this node's build slots for a build that is not a
   * workspace job (jobs/prebuild-manager.ts); resolves with the function that
   * frees it. Queued workspace jobs take a free slot first: someone is
   * waiting for a workspace, nobody for a prebuild. Rejects with
   * JOB_CANCELLED if `signal` aborts while waiting.
   */
  buildSlot(signal: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const cancelled = (): WarmstartError => new WarmstartError('JOB_CANCELLED', 'cancelled while waiting for a build slot');
      if (signal.aborted) return reject(cancelled());
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(this.slotFree());
      };
      const onAbort = (): void => {
        const i = this.slotWaiters.indexOf(grant);
        if (i >= 0) this.slotWaiters.splice(i, 1);
        reject(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.slotWaiters.push(grant);
      this.pump();
    });
  }

  /** The function that gives back a slot taken now; only its first call counts. */
  private slotFree(): () => void {
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      this.running -= 1;
      this.pump();
    };
  }

  private pump(): void {
    while (this.running < this.o.maxConcurrent && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      this.running += 1;
      job.state = 'running';
      const free = this.slotFree();
      void this.o.run(job, free).then(free, free);
    }
    while (this.running < this.o.maxConcurrent && this.slotWaiters.length > 0) {
      this.running += 1;
      this.slotWaiters.shift()!();
    }
  }
}
