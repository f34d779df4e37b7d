import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CreatePrebuildBody, PrebuildId, type PrebuildView } from '../../../../shared/src/api.js';
import { z } from 'zod';
import type { PrebuildManager } from '../../jobs/prebuild-manager.js';
import { callerOf } from '../caller.js';
import { apiError } from '../http-error.js';
import { requireJson } from './workspace-routes.js';

const PrebuildParams = z.object({ id: PrebuildId });
type PrebuildParams = z.infer<typeof PrebuildParams>;

/** A prebuild pushes to the node's cache for any repository: a token scoped to one workspace may not start or read one. */
async function requireNodeScope(request: FastifyRequest): Promise<void> {
  if (callerOf(request.principal).scope === 'workspace') {
    throw apiError('FORBIDDEN', 'the token is scoped to a workspace; prebuilds need a node-wide token');
  }
}

/**
 * `/v1/prebuilds`: queue a prebuild (202 at once: it takes minutes) and read
 * how it went. Results are kept in memory (jobs/prebuild-manager.ts).
 */
export function registerPrebuildRoutes(app: FastifyInstance, prebuilds: PrebuildManager, accepting: () => boolean): void {
  const refuseWhenShuttingDown = async (): Promise<void> => {
    if (!accepting()) throw apiError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
  };

  app.post<{ Body: CreatePrebuildBody }>(
    '/v1/prebuilds',
    { schema: { body: CreatePrebuildBody }, onRequest: [requireNodeScope, refuseWhenShuttingDown, requireJson] },
    async (request, reply) => reply.code(202).send(prebuilds.submit(request.body)),
  );

  app.get<{ Params: PrebuildParams }>(
    '/v1/prebuilds/:id',
    { schema: { params: PrebuildParams }, onRequest: [requireNodeScope] },
    async (request): Promise<PrebuildView> => {
      const view = prebuilds.get(request.params.id);
      if (view === null)
        throw apiError('PREBUILD_NOT_FOUND', `no prebuild ${request.params.id} (results are kept in memory until the agent restarts)`);
      return view;
    },
  );
}
