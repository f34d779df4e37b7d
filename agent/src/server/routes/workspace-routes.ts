import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CreateWorkspaceBody, type WorkspaceView } from '../../../../shared/src/api.js';
import { DeleteWorkspaceQuery, WorkspaceParams } from '../../../../shared/src/openapi.js';
import type { JobManager } from '../../jobs/job-manager.js';
import { parseIdempotencyKey } from '../../workspace/idempotency.js';
import { assertWorkspaceScope, type Principal } from '../auth.js';
import { callerOf } from '../caller.js';
import { apiError } from '../http-error.js';

/** A route-level onRequest hook: runs after auth and before the body is read. */
export async function requireJson(request: FastifyRequest): Promise<void> {
  const type = (request.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw apiError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
}

export function workspaceNotFound(id: string): Error {
  return apiError('WORKSPACE_NOT_FOUND', `no workspace ${id}`);
}

/**
 * Who a POST comes from, for matching its repeats (workspace/idempotency.ts):
 * the holders of the static token are one caller; a JWT is its subject and
 * the workspace its claim limits it to. One caller's body or key never
 * answers another's.
 */
export function requesterOf(principal: Principal | null): string {
  if (principal?.kind !== 'jwt') return principal?.kind ?? 'none';
  return `jwt ${JSON.stringify([principal.subject ?? null, principal.workspace ?? null])}`;
}

/** Create, list, read and delete workspaces; handlers see only authenticated, validated input. */
export function registerWorkspaceRoutes(app: FastifyInstance, jobs: JobManager): void {
  const refuseWhenShuttingDown = async (): Promise<void> => {
    // The job manager refuses too; this saves reading a body that would be refused.
    if (!jobs.accepting) throw apiError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
  };

  app.post<{ Body: CreateWorkspaceBody }>(
    '/v1/workspaces',
    {
      schema: { body: CreateWorkspaceBody },
      onRequest: [refuseWhenShuttingDown, requireJson],
      preHandler: async (request) => assertWorkspaceScope(request.principal, request.body.id),
    },
    async (request, reply) => {
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const view = await jobs.submit(request.body, callerOf(request.principal), { requester: requesterOf(request.principal), idempotencyKey });
      // 202: queued now; 200: the workspace an earlier POST made, `existing: true` (docs/api.md "Idempotency").
      return reply.code('existing' in view ? 200 : 202).send(view);
    },
  );

  app.get('/v1/workspaces', async (request): Promise<{ workspaces: WorkspaceView[] }> => {
    const all = await jobs.list();
    const p = request.principal;
    // A token scoped to one workspace sees only that one.
    const scope = p?.kind === 'jwt' ? p.workspace : undefined;
    return { workspaces: scope === undefined ? all : all.filter((w) => w.id === scope) };
  });

  app.get<{ Params: WorkspaceParams }>('/v1/workspaces/:id', { schema: { params: WorkspaceParams } }, async (request): Promise<WorkspaceView> => {
    const view = await jobs.get(request.params.id);
    if (view === null) throw workspaceNotFound(request.params.id);
    return view;
  });

  app.delete<{ Params: WorkspaceParams; Querystring: DeleteWorkspaceQuery }>(
    '/v1/workspaces/:id',
    { schema: { params: WorkspaceParams, querystring: DeleteWorkspaceQuery } },
    async (request): Promise<WorkspaceView> => jobs.remove(request.params.id, { purge: request.query.purge === 'true' }),
  );
}
