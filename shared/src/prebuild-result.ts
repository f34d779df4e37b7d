import { z } from 'zod';
import { ErrorResult, PushResult } from './workspace-result.js';

/**
 * The result of one prebuild: what `warmstart prebuild --json` prints and
 * what `GET /v1/prebuilds/:id` reports once the prebuild is over.
 * `done`: the image was built and its tags pushed; `skipped`: nothing to do
 * or nothing this node may do (`reason` says which); `failed`: the build or
 * the push went wrong (`error`).
 */
export const PrebuildStatus = z.enum(['done', 'skipped', 'failed']);

export const PrebuildResult = z.object({
  status: PrebuildStatus,
  reason: z.string().nullable(),
  repository: z.string(),
  configName: z.string().nullable(),
  /** the moving (layer cache) ref and the exact ref of this content, when known */
  refs: z.object({ moving: z.string().nullable(), exact: z.string().nullable() }),
  /** the refs this prebuild pushed (empty unless `done`) */
  pushed: z.array(z.string()),
  /** the push as the workspace pipeline reports it; null when none was tried */
  push: PushResult.nullable(),
  timings: z.object({
    /** clone to a built image with its container up; null when nothing was built */
    buildMs: z.number().int().nonnegative().nullable(),
    pushMs: z.number().int().nonnegative().nullable(),
    /** the whole prebuild, clean-up included */
    totalMs: z.number().int().nonnegative(),
  }),
  error: ErrorResult.nullable(),
});

export type PrebuildStatus = z.infer<typeof PrebuildStatus>;
export type PrebuildResult = z.infer<typeof PrebuildResult>;
