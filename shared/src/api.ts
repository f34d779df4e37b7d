import { z } from 'zod';
import { CacheResult, ErrorCodeSchema, ErrorResult, JobControls, Outcome, Profile, PushResult } from './workspace-result.js';
import { PrebuildResult } from './prebuild-result.js';

/**
 * The HTTP API between the control plane and the agent (`warmstart serve`).
 * Every request and response body is defined here once; the server validates
 * with these schemas and the OpenAPI document is generated from them.
 */

export const WorkspaceId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and -, 1 to 63 characters, not starting with -');

/** A job's cache registry, explicit ref and the registry credentials it brings (workspaces and prebuilds). */
export const JobCacheSettings = z
  .object({
    registry: z.string().min(1).max(512),
    ref: z.string().min(1).max(1024).optional(),
    username: z.string().min(1).max(512).optional(),
    password: z.string().min(1).max(8192).optional(),
  })
  .strict();

export const CreateWorkspaceBody = z
  .object({
    id: WorkspaceId,
    repository: z.string().min(1).max(2048),
    configName: z.string().min(1).max(100).optional(),
    lightweight: z.boolean().optional(),
    /** token for cloning; never stored or echoed */
    gitToken: z.string().min(1).max(4096).optional(),
    cache: JobCacheSettings.optional(),
    /** true: no moving pull, no cacheFrom, no exact lookup, no push (the CLI's --no-cache) */
    noCache: z.boolean().optional(),
    /** true: use the cache, push nothing (--no-push) */
    noPush: z.boolean().optional(),
    /** the push's limit, at most the node's own (WARMSTART_PUSH_TIMEOUT_SECONDS); the node's when absent (--push-timeout) */
    pushTimeoutSeconds: z.number().positive().max(86_400).optional(),
    callback: z
      .object({
        url: z
          .string()
          .url()
          .max(2048)
          .refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
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
  /** the job's cache and push settings as applied; null until its job has a result */
  controls: JobControls.nullable(),
  timings: z.record(z.string(), z.number().int().nonnegative()),
  error: ErrorResult.nullable(),
  /** set when the record says ready but its container is gone (seen at start-up) */
  containerMissing: z.boolean().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/**
 * `POST /v1/workspaces` answered 200: the POST repeated the one that queued
 * this workspace (the same body from the same caller, or the same
 * `Idempotency-Key`), so nothing new was queued; docs/api.md "Idempotency".
 */
export const ExistingWorkspaceView = WorkspaceView.extend({ existing: z.literal(true) });

export const WorkspaceList = z.object({ workspaces: z.array(WorkspaceView) });

export const Health = z.object({
  status: z.enum(['ok', 'shutting-down']),
  version: z.string(),
  uptimeSeconds: z.number().nonnegative(),
});

/**
 * `GET /readyz` when the node takes jobs now (200). When it does not (503),
 * the body is the API's error shape: SHUTTING_DOWN (draining) or
 * DOCKER_UNAVAILABLE, with every reason in the message.
 */
export const Readiness = z.object({ ready: z.literal(true) });

/** The one error shape of the API (and of the CLI's JSON output). */
export const ApiError = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  detail: z.string().optional(),
  validations: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});

/**
 * Every phase a job can go through, in about the order they run (the
 * result's `timings` uses the same names, plus `ready`). docs/how-it-works.md
 * "The pipeline" says what each does.
 */
export const PhaseName = z.enum([
  'clone-token',
  'clone',
  'volume',
  'remove-old',
  'config',
  'host-access',
  'key',
  'moving-labels',
  'exact-from-moving',
  'exact-lookup',
  'pin',
  'credentials',
  'pull',
  'pull-exact',
  'override',
  'up',
  'host-access-started',
  'fallback',
  'start-default',
  'push',
  'clean-up',
]);

const EventBase = {
  ts: z.string(),
  workspaceId: z.string(),
  /**
   * The event's place in its workspace's history: stamped when it is
   * recorded, it only grows across the runs of one id, restarts and the
   * trimming of old log lines (agent/src/events/event-seq.ts). Numbers can be
   * skipped (dropped log lines, an event the disk refused); none is used
   * twice. `GET /v1/workspaces/:id/events?after=<seq>` resumes after one.
   */
  seq: z.number().int().positive(),
};

/** One thing that happened to a workspace, by `type`: one line of `GET /v1/workspaces/:id/events` (NDJSON). */
export const WorkspaceEventSchema = z.discriminatedUnion('type', [
  z.object({ ...EventBase, type: z.literal('phase-start'), phase: PhaseName }),
  z.object({ ...EventBase, type: z.literal('phase-end'), phase: PhaseName, ms: z.number(), status: z.enum(['ok', 'failed']) }),
  /** a line of the devcontainers CLI's (or git's) output */
  z.object({ ...EventBase, type: z.literal('log'), text: z.string(), phase: PhaseName.optional() }),
  /** something the agent decided or noticed, in words */
  z.object({ ...EventBase, type: z.literal('note'), text: z.string(), phase: PhaseName.optional() }),
  /** the workspace is ready, in recovery or failed; `ms` from the start */
  z.object({ ...EventBase, type: z.literal('outcome'), status: Outcome, ms: z.number() }),
  /** the background push settled; `text` is its reason */
  z.object({ ...EventBase, type: z.literal('push'), status: PushResult.shape.status, ms: z.number().optional(), text: z.string().optional() }),
]);

/**
 * A line of the events stream that is not an event: written while the
 * stream is idle, so proxies and clients see the connection alive. It has
 * no `seq`; clients skip it.
 */
export const EventStreamKeepalive = z.object({ type: z.literal('keepalive') }).strict();

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
  /** zeros with `error` when the path could not be read (the beat is still sent) */
  disk: z.object({ path: z.string(), totalBytes: z.number(), freeBytes: z.number(), error: z.string().optional() }),
  ts: z.string(),
});

// ---- machines, snapshots and golden images (issue 5) ----

export const BackendName = z.enum(['docker', 'incus', 'lima', 'cloud-hypervisor']);

/** Machine and snapshot names: conservative, so every backend takes them as they are. */
export const MachineName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a lowercase letter, then lowercase letters, digits and -, 1 to 63 characters');
export const SnapshotName = MachineName;

/** A file copied into the machine before provisioning; it is part of the cache key. */
export const MachineFileBody = z
  .object({
    /** absolute path inside the machine */
    path: z.string().min(2).max(4096).startsWith('/', 'must be an absolute path in the machine'),
    /** the file's bytes, base64 */
    content: z.base64(),
  })
  .strict();

/** `POST /v1/machines`: the same inputs as `warmstart machine up`. */
export const CreateMachineBody = z
  .object({
    backend: BackendName,
    name: MachineName,
    /** the image provisioning starts from */
    base: z.string().min(1).max(512),
    /** the provision script's text (run with sh inside the machine) */
    provision: z
      .string()
      .max(512 * 1024)
      .optional(),
    files: z.array(MachineFileBody).max(100).optional(),
    /**
     * Keep this machine warm by a state snapshot of that name: restore it when
     * the machine has it, else boot, provision and take it (no shared cache
     * image; backends with state snapshots only).
     */
    snapshot: SnapshotName.optional(),
  })
  .strict();

const MachineCacheUpResult = z.object({
  instance: z.string(),
  cache: z.enum(['hit', 'miss']),
  /** sha256 of the inputs; the cached image is `warmstart-cache-<first 16>` */
  key: z.string(),
  ms: z.number().int().nonnegative(),
});

/** With `snapshot`: which path was taken and its times (agent/src/machines/machine-snapshot.ts). */
export const MachineSnapshotUpResult = z.object({
  instance: z.string(),
  snapshot: z.string(),
  path: z.enum(['restore', 'boot']),
  from: z.enum(['cold-boot', 'image']).optional(),
  restoreToReadyMs: z.number().int().nonnegative().optional(),
  bootToReadyMs: z.number().int().nonnegative().optional(),
  provisionMs: z.number().int().nonnegative().optional(),
  snapshotMs: z.number().int().nonnegative().optional(),
  timing: z.record(z.string(), z.union([z.number(), z.string()])).optional(),
  ms: z.number().int().nonnegative(),
});

export const MachineUpResult = z.union([MachineCacheUpResult, MachineSnapshotUpResult]);

export const MachineView = z.object({ name: z.string(), state: z.enum(['running', 'stopped', 'paused', 'unknown']) });
export const MachineList = z.object({ machines: z.array(MachineView) });
export const MachineRemoved = z.object({ machine: z.string(), deleted: z.literal(true) });

export const MachineImageView = z.object({
  name: z.string(),
  properties: z.record(z.string(), z.string()),
  createdAt: z.string().nullable(),
});
export const MachineCacheList = z.object({ images: z.array(MachineImageView) });

/** `POST /v1/snapshots` and `POST /v1/snapshots/restore`. */
export const SnapshotBody = z.object({ backend: BackendName, machine: MachineName, name: SnapshotName }).strict();

export const SnapshotView = z.object({ machine: z.string(), name: z.string(), createdAt: z.string().nullable() });
export const SnapshotList = z.object({ snapshots: z.array(SnapshotView) });
export const SnapshotRestored = z.object({ machine: z.string(), name: z.string(), restored: z.literal(true) });
export const SnapshotDeleted = z.object({ machine: z.string(), name: z.string(), deleted: z.literal(true) });
/** `POST /v1/machines/:name/snapshots?backend=`: the machine is in the path, the backend in the query. */
export const CreateSnapshotBody = z.object({ name: SnapshotName }).strict();

/**
 * `POST /v1/images`: a golden image from a running workspace, as `warmstart
 * image create`. Name, tag, capability and owner rules are the agent's
 * (docs/machines.md "Golden images"); a value outside them is a 400 with its own INVALID_* code.
 * A push uses the agent's cache registry and credentials. `owner` is a
 * check against the workspace's recorded owner for node-wide callers and
 * ignored for a workspace-scoped token (agent/src/server/routes/images.ts).
 */
export const CreateImageBody = z
  .object({
    workspaceId: WorkspaceId,
    name: z.string().min(1).max(128),
    tag: z.string().min(1).max(128).optional(),
    capabilities: z.array(z.string().min(1).max(128)).max(32).optional(),
    owner: z.string().min(1).max(256).optional(),
    push: z.boolean().optional(),
    /** the workspace folder's files (the repository) become the image's last layer */
    withWorkspace: z.boolean().optional(),
  })
  .strict();

export const GoldenImageView = z.object({
  name: z.string(),
  tag: z.string(),
  /** `warmstart-golden/<name>:<tag>` */
  ref: z.string(),
  id: z.string(),
  owner: z.string().nullable(),
  os: z.string(),
  capabilities: z.array(z.string()),
  createdAt: z.string().nullable(),
  pushedRefs: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
});
export const GoldenImageList = z.object({ images: z.array(GoldenImageView) });

/** A failed push keeps the local image: still 201, with `push.status` failed or timeout. */
export const CreateImageResult = z.object({
  image: GoldenImageView,
  workspaceId: z.string(),
  containerId: z.string(),
  push: PushResult,
});

// ---- jobs of POST /v1/machines and POST /v1/images (issue 16) ----

/** A machine or image job: accepted with 202, then read at `/v1/jobs/:jobId` and `/v1/jobs/:jobId/events`. */
export const JobId = z.string().uuid();
/** `running` from the 202 on; `done` with a result or `failed` with an error at the end. */
export const JobStatus = z.enum(['running', 'done', 'failed']);
/** The phases of machine and image jobs, in about the order they run (docs/machines.md "Jobs"). */
export const JobPhase = z.enum([
  'lookup',
  'launch',
  'boot',
  'restore',
  'files',
  'provision',
  'capture',
  'post-launch',
  'snapshot',
  'audit',
  'commit',
  'push',
]);

/** What a machine job was asked; the provision script and the files stay in memory only (they may hold secrets). */
export const MachineJobRequest = z.object({
  backend: BackendName,
  name: z.string(),
  base: z.string(),
  snapshot: z.string().nullable(),
  /** how many files were given */
  files: z.number().int().nonnegative(),
  /** whether a provision script was given */
  provision: z.boolean(),
});

/** What an image job was asked, the tag resolved (`latest` when none was given). */
export const ImageJobRequest = z.object({
  workspaceId: z.string(),
  name: z.string(),
  tag: z.string(),
  push: z.boolean(),
  withWorkspace: z.boolean(),
});

const JobViewBase = {
  id: JobId,
  status: JobStatus,
  /** set when `failed`: the stable code, `AGENT_RESTARTED` for a job the agent was stopped in the middle of */
  error: ErrorResult.nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
};
export const MachineJobView = z.object({
  ...JobViewBase,
  kind: z.literal('machine'),
  request: MachineJobRequest,
  result: MachineUpResult.nullable(),
});
/** `result.push.status` says how the push went: a failed push still leaves the job `done` with the local image. */
export const ImageJobView = z.object({ ...JobViewBase, kind: z.literal('image'), request: ImageJobRequest, result: CreateImageResult.nullable() });
export const JobView = z.discriminatedUnion('kind', [MachineJobView, ImageJobView]);
/** `GET /v1/jobs`: the machine and image jobs this node keeps that the caller may see, newest first. */
export const JobList = z.object({ jobs: z.array(JobView) });

/** `seq` counts from 1 per job; `GET /v1/jobs/:jobId/events?after=<seq>` resumes after one (as the workspace events do). */
const JobEventBase = { ts: z.string(), jobId: JobId, seq: z.number().int().positive() };

/**
 * One line of `GET /v1/jobs/:jobId/events` (NDJSON), by `type`. A quiet
 * stream also carries EventStreamKeepalive lines, which are not events.
 */
export const JobEventSchema = z.discriminatedUnion('type', [
  /** the job's status: `running` first, `done` or `failed` (with `code` and `text`) last */
  z.object({ ...JobEventBase, type: z.literal('status'), status: JobStatus, code: ErrorCodeSchema.optional(), text: z.string().optional() }),
  z.object({ ...JobEventBase, type: z.literal('phase-start'), phase: JobPhase }),
  z.object({ ...JobEventBase, type: z.literal('phase-end'), phase: JobPhase, ms: z.number().int().nonnegative(), status: z.enum(['ok', 'failed']) }),
  /** something the agent decided or noticed, in words (a cache hit, the path taken) */
  z.object({ ...JobEventBase, type: z.literal('note'), text: z.string(), phase: JobPhase.optional() }),
  /** an image job's push settled; `text` is its reason */
  z.object({
    ...JobEventBase,
    type: z.literal('push'),
    status: PushResult.shape.status,
    ms: z.number().int().nonnegative().optional(),
    text: z.string().optional(),
  }),
]);

export type JobStatus = z.infer<typeof JobStatus>;
export type JobPhase = z.infer<typeof JobPhase>;
export type MachineJobRequest = z.infer<typeof MachineJobRequest>;
export type ImageJobRequest = z.infer<typeof ImageJobRequest>;
export type JobView = z.infer<typeof JobView>;
export type JobList = z.infer<typeof JobList>;
export type JobEvent = z.infer<typeof JobEventSchema>;
export type CreateSnapshotBody = z.infer<typeof CreateSnapshotBody>;

export type CreateWorkspaceBody = z.infer<typeof CreateWorkspaceBody>;
export type WorkspaceStatus = z.infer<typeof WorkspaceStatus>;
export type WorkspaceView = z.infer<typeof WorkspaceView>;
export type ExistingWorkspaceView = z.infer<typeof ExistingWorkspaceView>;
export type Health = z.infer<typeof Health>;
export type Readiness = z.infer<typeof Readiness>;
export type ApiError = z.infer<typeof ApiError>;
export type CallbackBody = z.infer<typeof CallbackBody>;
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;
export type BackendName = z.infer<typeof BackendName>;
export type CreateMachineBody = z.infer<typeof CreateMachineBody>;
export type MachineUpResult = z.infer<typeof MachineUpResult>;
export type SnapshotBody = z.infer<typeof SnapshotBody>;
export type CreateImageBody = z.infer<typeof CreateImageBody>;

/**
 * `POST /v1/prebuilds`: build a repository's dev container image and push its
 * moving and exact tags, keeping no workspace (agent/src/workspace/prebuild.ts).
 */
export const CreatePrebuildBody = z
  .object({
    repository: z.string().min(1).max(2048),
    configName: z.string().min(1).max(100).optional(),
    cache: JobCacheSettings.optional(),
  })
  .strict();

export const PrebuildId = z.string().uuid();

/** A prebuild as the API reports it; `result` is set once it is over (done, skipped or failed). */
export const PrebuildView = z.object({
  id: PrebuildId,
  status: z.enum(['queued', 'running', 'done', 'skipped', 'failed']),
  repository: z.string(),
  configName: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  result: PrebuildResult.nullable(),
});

export type CreatePrebuildBody = z.infer<typeof CreatePrebuildBody>;
export type PrebuildView = z.infer<typeof PrebuildView>;
