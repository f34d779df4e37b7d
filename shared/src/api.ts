import { z } from 'zod';
import { CacheResult, ErrorResult, Outcome, Profile, PushResult } from './workspace-result.js';

/**
 * The HTTP API between the control plane and the agent (`warmstart serve`).
 * Every request and response body is defined here once; the server validates
 * with these schemas and the OpenAPI document is generated from them.
 */

export const WorkspaceId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and -, 1 to 63 characters, not starting with -');

export const CreateWorkspaceBody = z
  .object({
    id: WorkspaceId,
    repository: z.string().min(1).max(2048),
    configName: z.string().min(1).max(100).optional(),
    lightweight: z.boolean().optional(),
    /** token for cloning; never stored or echoed */
    gitToken: z.string().min(1).max(4096).optional(),
    cache: z
      .object({
        registry: z.string().min(1).max(512),
        ref: z.string().min(1).max(1024).optional(),
        username: z.string().min(1).max(512).optional(),
        password: z.string().min(1).max(8192).optional(),
      })
      .strict()
      .optional(),
    callback: z
      .object({
        url: z.string().url().max(2048).refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
        token: z.string().min(1).max(8192),
      })
      .strict()
      .optional(),
  })
  .strict();

export const WorkspaceStatus = z.enum(['queued', 'creating', 'ready', 'recovery', 'failed', 'deleting']);

/** A workspace as the API reports it: the CLI's result fields plus its lifecycle. */
export const WorkspaceView = z.object({
  id: WorkspaceId,
  /** the same value as id, so a view carries every field of the CLI's result */
  workspaceId: WorkspaceId,
  /** the CLI's outcome once the job has one; null while queued or creating */
  outcome: Outcome.nullable(),
  repository: z.string(),
  configName: z.string().nullable(),
  status: WorkspaceStatus,
  containerId: z.string().nullable(),
  profile: Profile.nullable(),
  cache: CacheResult.nullable(),
  push: PushResult.nullable(),
  timings: z.record(z.string(), z.number().int().nonnegative()),
  error: ErrorResult.nullable(),
  /** set when the record says ready but its container is gone (seen at start-up) */
  containerMissing: z.boolean().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const WorkspaceList = z.object({ workspaces: z.array(WorkspaceView) });

export const Health = z.object({
  status: z.enum(['ok', 'shutting-down']),
  version: z.string(),
  uptimeSeconds: z.number().nonnegative(),
});

/** The one error shape of the API (and of the CLI's JSON output). */
export const ApiError = z.object({
  code: z.string(),
  message: z.string(),
  detail: z.string().optional(),
  validations: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});

/** One line of `GET /v1/workspaces/:id/events` (NDJSON). */
export const WorkspaceEventSchema = z.object({
  ts: z.string(),
  workspaceId: z.string(),
  type: z.enum(['phase-start', 'phase-end', 'log', 'outcome', 'push', 'note', 'status']),
  phase: z.string().optional(),
  ms: z.number().optional(),
  text: z.string().optional(),
  status: z.string().optional(),
});

/** Body of the ready / provisioning-failed callbacks to the control plane. */
export const CallbackBody = z.object({
  workspaceId: z.string(),
  status: WorkspaceStatus,
  workspace: WorkspaceView,
});

/** Body of the node heartbeat. */
export const HeartbeatBody = z.object({
  nodeId: z.string(),
  version: z.string(),
  activeWorkspaces: z.array(z.string()),
  queuedJobs: z.number().int().nonnegative(),
  load: z.array(z.number()),
  memory: z.object({ totalBytes: z.number(), freeBytes: z.number(), agentRssBytes: z.number() }),
  disk: z.object({ path: z.string(), totalBytes: z.number(), freeBytes: z.number() }),
  ts: z.string(),
});

export type CreateWorkspaceBody = z.infer<typeof CreateWorkspaceBody>;
export type WorkspaceStatus = z.infer<typeof WorkspaceStatus>;
export type WorkspaceView = z.infer<typeof WorkspaceView>;
export type Health = z.infer<typeof Health>;
export type ApiError = z.infer<typeof ApiError>;
export type CallbackBody = z.infer<typeof CallbackBody>;
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;
