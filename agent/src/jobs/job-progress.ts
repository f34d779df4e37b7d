import type { JobPhase } from '../../../shared/src/api.js';
import type { PushResult } from '../../../shared/src/workspace-result.js';

/**
 * What a machine or image job tells whoever follows it while it runs
 * (jobs/resource-jobs.ts turns each call into an event of the job). The
 * work itself (machines/machine-up.ts, images/golden.ts) only names its
 * phases; the CLI passes NO_PROGRESS.
 */
export interface JobProgress {
  /** Runs `work` as the phase `name`: a phase-start, then a phase-end with its time and whether it threw. */
  phase<T>(name: JobPhase, work: () => Promise<T>): Promise<T>;
  /** Something decided or noticed, in words (a cache hit, the path taken); never a secret. */
  note(text: string): void;
  /** An image's push settled. */
  pushed(push: PushResult): void;
}

/** For callers nobody follows (the CLI): the work runs as it is. */
export const NO_PROGRESS: JobProgress = {
  phase: (_name, work) => work(),
  note: () => undefined,
  pushed: () => undefined,
};
