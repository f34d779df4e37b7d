import { z } from 'zod';
import { ERROR_CODES } from './error-codes.js';

/** Every error code (shared/src/error-codes.ts), for the schemas and the OpenAPI document. */
export const ErrorCodeSchema = z.enum(ERROR_CODES);

/**
 * The result of preparing one workspace: what `warmstart up --json` prints and
 * what the daemon reports for a workspace. The control plane depends on it.
 */
export const CacheHit = z.enum(['exact', 'layers', 'miss', 'disabled']);
/** `pending` only while the push runs in the background after ready; never in the CLI's output. */
export const PushStatus = z.enum(['pushed', 'skipped', 'failed', 'timeout', 'pending']);
export const Outcome = z.enum(['ready', 'recovery', 'failed']);
export const Profile = z.enum(['devcontainer', 'lightweight', 'recovery']);

export const CacheResult = z.object({
  ref: z.string().nullable(),
  hit: CacheHit,
  reason: z.string().nullable(),
  stepsCached: z.number().int().nonnegative().nullable(),
  stepsTotal: z.number().int().nonnegative().nullable(),
});

export const PushResult = z.object({
  status: PushStatus,
  ref: z.string().nullable(),
  reason: z.string().nullable(),
  ms: z.number().int().nonnegative().nullable(),
});

/**
 * The job's own cache and push settings as the node applied them: what the
 * caller asked (`noCache`, `noPush`, `pushTimeoutSeconds` in the API body;
 * `--no-cache`, `--no-push`, `--push-timeout` on the CLI), with the node's
 * push timeout where it asked none.
 */
export const JobControls = z.object({
  noCache: z.boolean(),
  noPush: z.boolean(),
  pushTimeoutSeconds: z.number().positive(),
});

export const ErrorResult = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  detail: z.string().optional(),
});

export const WorkspaceResult = z.object({
  outcome: Outcome,
  workspaceId: z.string(),
  containerId: z.string().nullable(),
  profile: Profile.nullable(),
  cache: CacheResult,
  push: PushResult,
  controls: JobControls,
  timings: z.record(z.string(), z.number().int().nonnegative()),
  error: ErrorResult.nullable(),
});

export type CacheHit = z.infer<typeof CacheHit>;
export type PushStatus = z.infer<typeof PushStatus>;
export type Outcome = z.infer<typeof Outcome>;
export type Profile = z.infer<typeof Profile>;
export type CacheResult = z.infer<typeof CacheResult>;
export type PushResult = z.infer<typeof PushResult>;
export type JobControls = z.infer<typeof JobControls>;
export type WorkspaceResult = z.infer<typeof WorkspaceResult>;
