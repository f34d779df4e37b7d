import { z } from 'zod';
import {
  ApiError,
  BackendName,
  CreateImageBody,
  CreateImageResult,
  CreateMachineBody,
  CreatePrebuildBody,
  CreateSnapshotBody,
  CreateWorkspaceBody,
  EventStreamKeepalive,
  ExistingWorkspaceView,
  GoldenImageList,
  GoldenImageView,
  Health,
  ImageJobRequest,
  ImageJobView,
  JobEventSchema,
  JobId,
  JobPhase,
  JobStatus,
  JobList,
  JobView,
  Readiness,
  MachineCacheList,
  MachineFileBody,
  MachineImageView,
  MachineJobRequest,
  MachineJobView,
  MachineList,
  MachineName,
  MachineRemoved,
  MachineUpResult,
  MachineView,
  PrebuildId,
  PrebuildView,
  SnapshotBody,
  SnapshotDeleted,
  SnapshotList,
  SnapshotName,
  SnapshotRestored,
  SnapshotView,
  WorkspaceEventSchema,
  WorkspaceId,
  WorkspaceList,
  WorkspaceStatus,
  WorkspaceView,
} from './api.js';
import { PrebuildResult } from './prebuild-result.js';
import { CacheResult, ErrorResult, Profile, PushResult } from './workspace-result.js';

/** Path parameters of `/v1/workspaces/:id...`. */
export const WorkspaceParams = z.object({ id: WorkspaceId });

/** Query of `DELETE /v1/workspaces/:id`: `purge=true` also removes the volume and the record. */
export const DeleteWorkspaceQuery = z.object({ purge: z.enum(['true', 'false']).optional() });

/** Query of the machine routes: which backend. */
export const BackendQuery = z.object({ backend: BackendName });
/** Path parameters of `/v1/machines/:name`. */
export const MachineParams = z.object({ name: MachineName });
/** Path parameters of `/v1/machines/:name/snapshots/:snapshot...`. */
export const MachineSnapshotParams = z.object({ name: MachineName, snapshot: SnapshotName });
/** Path parameters of `/v1/jobs/:jobId...` (not `id`: the auth hook reads that as a workspace id). */
export const JobParams = z.object({ jobId: JobId });
/** Query of `GET /v1/snapshots` (deprecated). */
export const SnapshotListQuery = z.object({ backend: BackendName, machine: MachineName });
/** Query of `DELETE /v1/snapshots` (deprecated). */
export const SnapshotDeleteQuery = z.object({ backend: BackendName, machine: MachineName, name: MachineName });
/** Path parameters and query of `DELETE /v1/images/:name` (the name rules are checked by the agent). */
export const ImageParams = z.object({ name: z.string().min(1).max(128) });
export const ImageDeleteQuery = z.object({ tag: z.string().min(1).max(128).optional() });

export type WorkspaceParams = z.infer<typeof WorkspaceParams>;
export type DeleteWorkspaceQuery = z.infer<typeof DeleteWorkspaceQuery>;
export type BackendQuery = z.infer<typeof BackendQuery>;
export type MachineParams = z.infer<typeof MachineParams>;
export type MachineSnapshotParams = z.infer<typeof MachineSnapshotParams>;
export type JobParams = z.infer<typeof JobParams>;
export type SnapshotListQuery = z.infer<typeof SnapshotListQuery>;
export type SnapshotDeleteQuery = z.infer<typeof SnapshotDeleteQuery>;
export type ImageParams = z.infer<typeof ImageParams>;
export type ImageDeleteQuery = z.infer<typeof ImageDeleteQuery>;

/** Every named schema of the document; nested ones become `$ref`s to each other. */
const COMPONENTS: Record<string, z.ZodType> = {
  CreateWorkspaceBody,
  WorkspaceView,
  ExistingWorkspaceView,
  WorkspaceList,
  WorkspaceId,
  WorkspaceStatus,
  WorkspaceEvent: WorkspaceEventSchema,
  EventStreamKeepalive,
  Health,
  Readiness,
  ApiError,
  CacheResult,
  PushResult,
  ErrorResult,
  Profile,
  BackendName,
  MachineName,
  MachineFileBody,
  CreateMachineBody,
  MachineUpResult,
  MachineView,
  MachineList,
  MachineRemoved,
  MachineImageView,
  MachineCacheList,
  SnapshotBody,
  CreateSnapshotBody,
  SnapshotView,
  SnapshotList,
  SnapshotRestored,
  SnapshotDeleted,
  CreateImageBody,
  CreateImageResult,
  GoldenImageView,
  GoldenImageList,
  JobId,
  JobStatus,
  JobPhase,
  MachineJobRequest,
  ImageJobRequest,
  MachineJobView,
  ImageJobView,
  JobList,
  JobView,
  JobEvent: JobEventSchema,
  CreatePrebuildBody,
  PrebuildId,
  PrebuildView,
  PrebuildResult,
};

type JsonObject = Record<string, unknown>;

const ref = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string): JsonObject => ({ 'application/json': { schema: ref(name) } });

function componentSchemas(): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  // `input`: describe what may be sent; response objects then stay open to
  // fields added later, while `.strict()` request bodies still say
  // additionalProperties: false.
  const { schemas } = z.toJSONSchema(registry, { io: 'input', uri: (id) => `#/components/schemas/${id}` });
  const out: Record<string, JsonObject> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    // Components are not standalone documents: no $schema / $id of their own.
    const { $schema: _schema, $id: _id, ...rest } = schema as JsonObject;
    out[id] = rest;
  }
  return out;
}

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid request: every field error is listed in `validations`',
  401: 'missing or invalid bearer token',
  403: 'the token is not valid for this workspace',
  404: 'no such workspace',
  409:
    'WORKSPACE_EXISTS: a workspace with this id exists and this is not a repeat of the request that made it (a failed one, or one deleted without purge, is prepared again on its volume instead); ' +
    'WORKSPACE_CONFLICT: it holds another repository; IDEMPOTENCY_KEY_IN_USE: a request with this Idempotency-Key is still at work',
  422: 'IDEMPOTENCY_KEY_REUSED: this caller used the Idempotency-Key for another request (another body or workspace)',
  413: 'body larger than the limit (64 KiB)',
  415: 'Content-Type is not application/json',
  503: 'the agent is shutting down and takes no new jobs',
  507: 'STATE_WRITE_FAILED: the agent could not write its state (its disk is full); nothing was changed',
};

/** The same statuses on the machine, snapshot and image routes, where they mean other things. */
const BACKEND_ERROR_TEXT: Record<number, string> = {
  ...ERROR_TEXT,
  403: 'the token is scoped to a workspace (or the workspace has another owner)',
  404: 'MACHINE_NOT_FOUND, IMAGE_NOT_FOUND, SNAPSHOT_NOT_FOUND or WORKSPACE_NOT_FOUND',
  409: 'BACKEND_PRECONDITION (name taken, wrong state, a job already at work on it) or WORKSPACE_NOT_RUNNING',
  501: 'BACKEND_UNSUPPORTED: the backend has no such operation',
  503: 'BACKEND_UNAVAILABLE, or the agent is shutting down',
  507: 'STATE_WRITE_FAILED: the agent could not write the job record (its disk is full); nothing was started',
};

function errorsWith(texts: Record<number, string>, statuses: number[]): JsonObject {
  return Object.fromEntries([...statuses, 500].map((s) => [String(s), { description: texts[s] ?? 'internal error', content: json('ApiError') }]));
}

function errors(...statuses: number[]): JsonObject {
  return errorsWith(ERROR_TEXT, statuses);
}

function backendErrors(...statuses: number[]): JsonObject {
  return errorsWith(BACKEND_ERROR_TEXT, statuses);
}

const query = (name: string, schema: JsonObject, required = true): JsonObject => ({ name, in: 'query', required, schema });

/** `/v1/machines` (snapshots under each machine), `/v1/images`, their jobs, and the deprecated `/v1/snapshots`. */
function machinePaths(): JsonObject {
  const backend = query('backend', ref('BackendName'));
  const machine = query('machine', ref('MachineName'));
  const name = { name: 'name', in: 'path', required: true, schema: ref('MachineName') };
  const snapshot = { name: 'snapshot', in: 'path', required: true, schema: ref('MachineName') };
  const ok = (description: string, schema: string): JsonObject => ({ '200': { description, content: json(schema) } });
  const acceptedJob = (schema: string): JsonObject => ({
    '202': {
      description: 'accepted: the job runs in the background; read it at the Location (GET /v1/jobs/{jobId}) and follow /v1/jobs/{jobId}/events',
      headers: { Location: { description: '/v1/jobs/{jobId}', schema: { type: 'string' } } },
      content: json(schema),
    },
  });
  const deprecated = 'Deprecated: use /v1/machines/{name}/snapshots; kept for existing clients.';
  return {
    '/v1/machines': {
      post: {
        operationId: 'machineUp',
        summary: 'Make a provisioned machine (from the cache when the same inputs were provisioned before): an accepted job',
        description:
          'Checked before the 202: the body, that the backend answers, that the name is free (or, with `snapshot`, that the machine has it) and that the backend has state snapshots when one is named. ' +
          "Anything after is the job's: `failed` with a stable `error.code` (IMAGE_NOT_FOUND for a missing base, BACKEND_ERROR for a failing provision script, ...).",
        requestBody: { required: true, content: json('CreateMachineBody') },
        responses: { ...acceptedJob('MachineJobView'), ...backendErrors(400, 401, 403, 409, 413, 415, 501, 503, 507) },
      },
      get: {
        operationId: 'listMachines',
        parameters: [backend],
        responses: { ...ok('the machines of the backend', 'MachineList'), ...backendErrors(400, 401, 403, 501, 503) },
      },
    },
    '/v1/machines/cache': {
      get: {
        operationId: 'listMachineCache',
        summary: 'The cached provisioned images of the backend, newest first',
        parameters: [backend],
        responses: { ...ok('the cached images', 'MachineCacheList'), ...backendErrors(400, 401, 403, 501, 503) },
      },
    },
    '/v1/machines/{name}': {
      delete: {
        operationId: 'deleteMachine',
        parameters: [name, backend],
        responses: { ...ok('the machine is gone', 'MachineRemoved'), ...backendErrors(400, 401, 403, 404, 409, 501, 503) },
      },
    },
    '/v1/machines/{name}/snapshots': {
      post: {
        operationId: 'createMachineSnapshot',
        summary: 'Take a state snapshot of the machine (409 when it has one of that name or is in a state the backend cannot snapshot)',
        parameters: [name, backend],
        requestBody: { required: true, content: json('CreateSnapshotBody') },
        responses: {
          '201': {
            description: 'the snapshot',
            headers: { Location: { description: '/v1/machines/{name}/snapshots/{snapshot}?backend=', schema: { type: 'string' } } },
            content: json('SnapshotView'),
          },
          ...backendErrors(400, 401, 403, 404, 409, 413, 415, 501, 503),
        },
      },
      get: {
        operationId: 'listMachineSnapshots',
        parameters: [name, backend],
        responses: { ...ok("the machine's snapshots", 'SnapshotList'), ...backendErrors(400, 401, 403, 404, 501, 503) },
      },
    },
    '/v1/machines/{name}/snapshots/{snapshot}': {
      get: {
        operationId: 'getMachineSnapshot',
        parameters: [name, snapshot, backend],
        responses: { ...ok('the snapshot', 'SnapshotView'), ...backendErrors(400, 401, 403, 404, 501, 503) },
      },
      delete: {
        operationId: 'deleteMachineSnapshot',
        parameters: [name, snapshot, backend],
        responses: { ...ok('the snapshot is gone', 'SnapshotDeleted'), ...backendErrors(400, 401, 403, 404, 409, 501, 503) },
      },
    },
    '/v1/machines/{name}/snapshots/{snapshot}/restore': {
      post: {
        operationId: 'restoreMachineSnapshot',
        summary: 'Bring the machine back to the snapshot (no body)',
        parameters: [name, snapshot, backend],
        responses: { ...ok('the machine runs from the snapshot', 'SnapshotRestored'), ...backendErrors(400, 401, 403, 404, 409, 415, 501, 503) },
      },
    },
    '/v1/snapshots': {
      post: {
        operationId: 'createSnapshot',
        deprecated: true,
        description: deprecated,
        requestBody: { required: true, content: json('SnapshotBody') },
        responses: {
          '201': { description: 'the snapshot', content: json('SnapshotView') },
          ...backendErrors(400, 401, 403, 404, 409, 413, 415, 501, 503),
        },
      },
      get: {
        operationId: 'listSnapshots',
        deprecated: true,
        description: deprecated,
        parameters: [backend, machine],
        responses: { ...ok("the machine's snapshots", 'SnapshotList'), ...backendErrors(400, 401, 403, 404, 501, 503) },
      },
      delete: {
        operationId: 'deleteSnapshot',
        deprecated: true,
        description: deprecated,
        parameters: [backend, machine, query('name', ref('MachineName'))],
        responses: { ...ok('the snapshot is gone', 'SnapshotDeleted'), ...backendErrors(400, 401, 403, 404, 409, 501, 503) },
      },
    },
    '/v1/snapshots/restore': {
      post: {
        operationId: 'restoreSnapshot',
        deprecated: true,
        description: deprecated,
        requestBody: { required: true, content: json('SnapshotBody') },
        responses: {
          ...ok('the machine runs from the snapshot', 'SnapshotRestored'),
          ...backendErrors(400, 401, 403, 404, 409, 413, 415, 501, 503),
        },
      },
    },
    '/v1/images': {
      post: {
        operationId: 'createGoldenImage',
        summary: 'Commit a running workspace as a golden image (pushed to the cache registry with push: true): an accepted job',
        description:
          'Checked before the 202: the names, that the workspace runs, the owner. ' +
          'A token scoped to one workspace (a JWT with a workspace claim) may capture that workspace only (403 FORBIDDEN) and name images ' +
          '`<workspaceId>` or `<workspaceId>-...` only (403 IMAGE_NAME_FORBIDDEN); its `owner` is ignored: the image carries the owner recorded on the workspace. ' +
          'A failed push leaves the job `done` with the local image and `result.push.status` failed or timeout.',
        requestBody: { required: true, content: json('CreateImageBody') },
        responses: { ...acceptedJob('ImageJobView'), ...backendErrors(400, 401, 403, 404, 409, 413, 415, 503, 507) },
      },
      get: {
        operationId: 'listGoldenImages',
        responses: { ...ok('the golden images on this node', 'GoldenImageList'), ...backendErrors(401, 403) },
      },
    },
    '/v1/images/{name}': {
      delete: {
        operationId: 'deleteGoldenImage',
        summary: 'Remove the local image and the local tags it was pushed under (the registry copy stays)',
        parameters: [
          { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
          query('tag', { type: 'string', default: 'latest' }, false),
        ],
        responses: { ...ok('the removed image', 'GoldenImageView'), ...backendErrors(400, 401, 403, 404) },
      },
    },
  };
}

/** `/v1/jobs/{jobId}`: the jobs of POST /v1/machines and POST /v1/images. */
function jobPaths(): JsonObject {
  const jobId = { name: 'jobId', in: 'path', required: true, schema: ref('JobId') };
  const texts = {
    ...ERROR_TEXT,
    404: 'JOB_NOT_FOUND: no such job on this node, or one the token may not see (a workspace-scoped token sees only the image jobs of its workspace)',
  };
  return {
    '/v1/jobs': {
      get: {
        operationId: 'listJobs',
        summary: 'The machine and image jobs this node keeps (the running ones and the last 200 finished) that the token may see, newest first',
        responses: { '200': { description: 'the jobs', content: json('JobList') }, ...errors(401) },
      },
    },
    '/v1/jobs/{jobId}': {
      get: {
        operationId: 'getJob',
        summary: 'A machine or image job: running, done (with result) or failed (with error); AGENT_RESTARTED when the agent stopped in the middle',
        parameters: [jobId],
        responses: { '200': { description: 'the job', content: json('JobView') }, ...errorsWith(texts, [400, 401, 404]) },
      },
    },
    '/v1/jobs/{jobId}/events': {
      get: {
        operationId: 'streamJobEvents',
        summary: 'The events so far (past `after`), then new ones as they happen, until the job ends; a keepalive line when quiet',
        parameters: [jobId, query('after', { type: 'integer', minimum: 0 }, false)],
        responses: {
          '200': {
            description: 'newline-delimited JSON, one JobEvent per line, or a keepalive line {"type":"keepalive"} (no seq) while the job is quiet',
            content: { 'application/x-ndjson': { schema: { oneOf: [ref('JobEvent'), ref('EventStreamKeepalive')] } } },
          },
          ...errorsWith(texts, [400, 401, 404]),
        },
      },
    },
  };
}

function paths(): JsonObject {
  const id = { name: 'id', in: 'path', required: true, schema: ref('WorkspaceId') };
  return {
    '/health': {
      get: {
        operationId: 'getHealth',
        summary: 'Liveness and version; no authentication',
        security: [],
        responses: { '200': { description: 'the agent is up', content: json('Health') } },
      },
    },
    '/readyz': {
      get: {
        operationId: 'getReadiness',
        summary: 'Whether the node takes jobs now: 503 while draining or with the Docker engine away; no authentication',
        security: [],
        responses: {
          '200': { description: 'ready', content: json('Readiness') },
          '503': { description: 'not ready: SHUTTING_DOWN (draining) or DOCKER_UNAVAILABLE, every reason in the message', content: json('ApiError') },
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        responses: {
          '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errors(401),
        },
      },
    },
    '/v1/openapi.json': {
      get: {
        operationId: 'getOpenApi',
        summary: 'This document',
        responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } }, ...errors(401) },
      },
    },
    '/v1/workspaces': {
      post: {
        operationId: 'createWorkspace',
        summary: 'Queue a workspace to be prepared; a repeat of the request that made one is answered with it',
        description:
          'A POST that repeats the one that made a queued, creating, ready or recovery workspace (the same body, keys in any order, from the same caller) ' +
          'is answered 200 with that workspace and `existing: true`, and queues nothing. With an Idempotency-Key, the same key from the same caller ' +
          'with the same body is answered so in any status; with another body or workspace it is 422. The agent keeps SHA-256 digests of body and key, never the body.',
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description: 'names this request, per caller: 1 to 255 visible ASCII characters, quoted (a structured-field string) or bare',
            schema: { type: 'string', minLength: 1, maxLength: 257 },
          },
        ],
        requestBody: { required: true, content: json('CreateWorkspaceBody') },
        responses: {
          '200': {
            description: 'a repeat: the workspace the earlier request made, as it is now; nothing new queued',
            content: json('ExistingWorkspaceView'),
          },
          '202': { description: 'accepted and queued', content: json('WorkspaceView') },
          ...errors(400, 401, 403, 409, 413, 415, 422, 503, 507),
        },
      },
      get: {
        operationId: 'listWorkspaces',
        summary: 'Every workspace the agent knows',
        responses: { '200': { description: 'the workspaces', content: json('WorkspaceList') }, ...errors(401) },
      },
    },
    '/v1/workspaces/{id}': {
      get: {
        operationId: 'getWorkspace',
        parameters: [id],
        responses: { '200': { description: 'the workspace', content: json('WorkspaceView') }, ...errors(400, 401, 403, 404) },
      },
      delete: {
        operationId: 'deleteWorkspace',
        summary: 'Stop its job and remove its containers; its volume and record too with purge=true',
        parameters: [id, { name: 'purge', in: 'query', required: false, schema: { type: 'string', enum: ['true', 'false'], default: 'false' } }],
        responses: { '200': { description: 'the last view of the workspace', content: json('WorkspaceView') }, ...errors(400, 401, 403, 404, 507) },
      },
    },
    '/v1/workspaces/{id}/events': {
      get: {
        operationId: 'streamWorkspaceEvents',
        summary: 'The events so far, then new ones as they happen, until the workspace reaches a terminal state',
        description:
          'Every event carries `seq`, which only grows for the workspace (across its runs and restarts of the agent); a client that read up to ' +
          '`seq` N resumes with `?after=N` and gets exactly the events after it. While nothing happens, a `{"type":"keepalive"}` line ' +
          '(EventStreamKeepalive, no seq) is written every 15 s; clients skip it.',
        parameters: [
          id,
          query(
            'after',
            {
              type: 'string',
              pattern: '^[0-9]{1,16}$',
              description: 'a seq: only events with a higher one (0: from the first); without it, a running job sends its own run',
            },
            false,
          ),
        ],
        responses: {
          '200': {
            description: 'newline-delimited JSON: one WorkspaceEvent per line, and keepalive lines while idle',
            content: { 'application/x-ndjson': { schema: { oneOf: [ref('WorkspaceEvent'), ref('EventStreamKeepalive')] } } },
          },
          ...errors(400, 401, 403, 404),
        },
      },
    },
    ...machinePaths(),
    ...jobPaths(),
    ...prebuildPaths(),
  };
}

/** `/v1/prebuilds`: build and push a repository's image, keep nothing (agent/src/workspace/prebuild.ts). */
function prebuildPaths(): JsonObject {
  const texts = {
    ...ERROR_TEXT,
    403: 'the token is scoped to a workspace: prebuilds need a node-wide token',
    404: 'PREBUILD_NOT_FOUND: no such prebuild (results are kept in memory until the agent restarts)',
  };
  return {
    '/v1/prebuilds': {
      post: {
        operationId: 'createPrebuild',
        summary: 'Queue a prebuild: build the dev container image, push its moving and exact tags, keep no workspace',
        requestBody: { required: true, content: json('CreatePrebuildBody') },
        responses: {
          '202': { description: 'accepted and queued; poll GET /v1/prebuilds/{id}', content: json('PrebuildView') },
          ...errorsWith(texts, [400, 401, 403, 413, 415, 503]),
        },
      },
    },
    '/v1/prebuilds/{id}': {
      get: {
        operationId: 'getPrebuild',
        parameters: [{ name: 'id', in: 'path', required: true, schema: ref('PrebuildId') }],
        responses: {
          '200': { description: 'the prebuild; `result` once it is over', content: json('PrebuildView') },
          ...errorsWith(texts, [400, 401, 403, 404]),
        },
      },
    },
  };
}

/** The OpenAPI 3.1 document of the agent's HTTP API, generated from the zod schemas. */
export function buildOpenApiDocument(version: string): JsonObject {
  return {
    openapi: '3.1.0',
    info: {
      title: 'warmstart agent API',
      version,
      description: 'What the control plane calls on a node. Errors share one shape: ApiError.',
    },
    security: [{ bearerAuth: [] }],
    paths: paths(),
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'The token from WARMSTART_API_TOKEN_FILE, or a JWT signed by a key in WARMSTART_JWKS_URL',
        },
      },
      schemas: componentSchemas(),
    },
  };
}
