import type { FastifyInstance } from 'fastify';
import { CreateImageBody } from '../../../../shared/src/api.js';
import { ImageDeleteQuery, ImageParams } from '../../../../shared/src/openapi.js';
import {
  captureGoldenImage,
  checkGoldenImage,
  listGoldenImages,
  removeGoldenImage,
  type CreateGoldenOptions,
  type GoldenDeps,
  type GoldenImage,
} from '../../images/golden.js';
import { assertNameInWorkspace } from '../../images/rules.js';
import type { ResourceJobs } from '../../jobs/resource-jobs.js';
import { assertWorkspaceScope } from '../auth.js';
import { callerOf } from '../caller.js';
import { apiError } from '../http-error.js';
import { accepted } from './job-routes.js';
import { requireNodeScope } from './machines.js';
import { requireJson } from './workspace-routes.js';

/**
 * `/v1/images`: golden images from workspaces, as `warmstart image`. The
 * naming rules, the workspace and its owner are checked before the job is
 * accepted (400 INVALID_IMAGE_NAME, 404, 409, 403, ...); the audit, commit
 * and push run as a job (202, read at `/v1/jobs/:jobId`). A push uses the
 * agent's cache registry and credentials; a failed push still ends the job
 * `done` with the local image and `push.status` failed/timeout.
 */
export function registerImageRoutes(app: FastifyInstance, deps: GoldenDeps, jobs: ResourceJobs, accepting: () => boolean): void {
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
      const options: CreateGoldenOptions = {
        workspaceId: b.workspaceId,
        name: b.name,
        tag: b.tag ?? null,
        capabilities: b.capabilities ?? [],
        // A scoped caller's owner is the workspace's recorded one, never what its body says.
        owner: scoped ? null : (b.owner ?? null),
        scoped,
        push: b.push === true,
        withWorkspace: b.withWorkspace === true,
      };
      const checked = await checkGoldenImage(deps, options);
      const view = await jobs.submit({
        kind: 'image',
        target: `image ${checked.ref}`,
        request: {
          workspaceId: checked.plan.workspaceId,
          name: checked.plan.name,
          tag: checked.plan.tag,
          push: options.push === true,
          withWorkspace: options.withWorkspace === true,
        },
        run: (progress) => captureGoldenImage(deps, checked, options, progress),
      });
      return accepted(reply, view);
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
