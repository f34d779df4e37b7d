import { z } from 'zod';
import {
  ApiError,
  CreateWorkspaceBody,
  Health,
  WorkspaceEventSchema,
  WorkspaceId,
  WorkspaceList,
  WorkspaceStatus,
  WorkspaceView,
} from './api.js';
import { CacheResult, ErrorResult, Profile, PushResult } from './workspace-result.js';

/** Path parameters of `/v1/workspaces/:id...`. */
export const WorkspaceParams = z.object({ id: WorkspaceId });

/** Query of `DELETE /v1/workspaces/:id`: `purge=true` also removes the volume and the record. */
export const DeleteWorkspaceQuery = z.object({ purge: z.enum(['true', 'false']).optional() });

export type WorkspaceParams = z.infer<typeof WorkspaceParams>;
export type DeleteWorkspaceQuery = z.infer<typeof DeleteWorkspaceQuery>;

/** Every named schema of the document; nested ones become `$ref`s to each other. */
const COMPONENTS: Record<string, z.ZodType> = {
  CreateWorkspaceBody,
  WorkspaceView,
  WorkspaceList,
  WorkspaceId,
  WorkspaceStatus,
  WorkspaceEvent: WorkspaceEventSchema,
  Health,
  ApiError,
  CacheResult,
  PushResult,
  ErrorResult,
  Profile,
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
  409: 'a workspace with this id exists',
  413: 'body larger than the limit (64 KiB)',
  415: 'Content-Type is not application/json',
  503: 'the agent is shutting down and takes no new jobs',
};

function errors(...statuses: number[]): JsonObject {
  return Object.fromEntries(
    [...statuses, 500].map((s) => [String(s), { description: ERROR_TEXT[s] ?? 'internal error', content: json('ApiError') }]),
  );
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
        summary: 'Queue a workspace to be prepared',
        requestBody: { required: true, content: json('CreateWorkspaceBody') },
        responses: {
          '202': { description: 'accepted and queued', content: json('WorkspaceView') },
          ...errors(400, 401, 403, 409, 413, 415, 503),
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
        parameters: [
          id,
          { name: 'purge', in: 'query', required: false, schema: { type: 'string', enum: ['true', 'false'], default: 'false' } },
        ],
        responses: { '200': { description: 'the last view of the workspace', content: json('WorkspaceView') }, ...errors(400, 401, 403, 404) },
      },
    },
    '/v1/workspaces/{id}/events': {
      get: {
        operationId: 'streamWorkspaceEvents',
        summary: 'The events so far, then new ones as they happen, until the workspace reaches a terminal state',
        parameters: [id],
        responses: {
          '200': {
            description: 'newline-delimited JSON, one WorkspaceEvent per line',
            content: { 'application/x-ndjson': { schema: ref('WorkspaceEvent') } },
          },
          ...errors(400, 401, 403, 404),
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
