import type { FastifyInstance } from 'fastify';
import { CreateImageBody } from '../../../../shared/src/api.js';
import { ImageDeleteQuery, ImageParams } from '../../../../shared/src/openapi.js';
import { createGoldenImage, listGoldenImages, removeGoldenImage, type GoldenDeps, type GoldenImage } from '../../images/golden.js';
import { assertNameInWorkspace } from '../../images/rules.js';
import { assertWorkspaceScope } from '../auth.js';
import { callerOf } from '../caller.js';
import { apiError } from '../http-error.js';
import { requireNodeScope } from './machines.js';
import { requireJson } from './workspace-routes.js';

/**
 * `/v1/images`: golden images from workspaces, as `warmstart image`. The
 * naming rules are checked by the agent (400 INVALID_IMAGE_NAME, ...); a
 * push uses the agent's cache registry and credentials, and a failed push
 * still answers 201 with the local image and `push.status` failed/timeout.
 */
export function registerImageRoutes(app: FastifyInstance, deps: GoldenDeps, accepting: () => boolean): void {
  const refuseWhenShuttingDown = async (): Promise<void> => {
    if (!accepting()) throw apiError('SHUTTING_DOWN', 'the agent is shutting down and makes no new images');
  };

  app.post<{ Body: CreateImageBody }>(
    '/v1/images',
    {
      schema: { body: CreateImageBody },
      onRequest: [refuseWhenShuttingDown, requireJson],
      // A token scoped to a workspace may capture that workspace only, under its own names.
      preHandler: async (request) => {
        assertWorkspaceScope(request.principal, request.body.workspaceId);
        if (callerOf(request.principal).scope === 'workspace') assertNameInWorkspace(request.body.name, request.body.workspaceId);
      },
    },
    async (request, reply) => {
      const b = request.body;
      const scoped = callerOf(request.principal).scope === 'workspace';
      // Awaited in the request, like machine up: a commit (and a push) takes a while, not a job.
      const result = await createGoldenImage(deps, {
        workspaceId: b.workspaceId,
        name: b.name,
        tag: b.tag ?? null,
        capabilities: b.capabilities ?? [],
        // A scoped caller's owner is the workspace's recorded one, never what its body says.
        owner: scoped ? null : (b.owner ?? null),
        scoped,
        push: b.push === true,
        withWorkspace: b.withWorkspace === true,
      });
      return reply.code(201).send(result);
    },
  );

  app.get('/v1/images', { onRequest: [requireNodeScope] }, async (): Promise<{ images: GoldenImage[] }> => ({
    images: await listGoldenImages(deps),
  }));

  app.delete<{ Params: ImageParams; Querystring: ImageDeleteQuery }>(
    '/v1/images/:name',
    { schema: { params: ImageParams, querystring: ImageDeleteQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<GoldenImage> => removeGoldenImage(deps, request.params.name, request.query.tag ?? null),
  );
}
