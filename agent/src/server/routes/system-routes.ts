import type { FastifyInstance } from 'fastify';
import type { Health } from '../../../../shared/src/api.js';
import { buildOpenApiDocument } from '../../../../shared/src/openapi.js';
import type { JobManager } from '../../jobs/job-manager.js';
import type { Metrics } from '../../metrics/metrics.js';

export interface SystemRouteDeps {
  jobs: JobManager;
  metrics: Metrics;
  version: string;
  startedAt: number;
}

/** `/health` (public), `/metrics`, `/v1/openapi.json`. */
export function registerSystemRoutes(app: FastifyInstance, deps: SystemRouteDeps): void {
  const openapi = buildOpenApiDocument(deps.version);

  app.get('/health', async (): Promise<Health> => ({
    status: deps.jobs.accepting ? 'ok' : 'shutting-down',
    version: deps.version,
    uptimeSeconds: Math.max(0, Math.floor((Date.now() - deps.startedAt) / 1000)),
  }));

  app.get('/metrics', async (_request, reply) => {
    const { running, queued, pushing } = deps.jobs.stats();
    deps.metrics.setGauges({ running, queued, pushing });
    const { contentType, body } = await deps.metrics.render();
    return reply.type(contentType).send(body);
  });

  app.get('/v1/openapi.json', async () => openapi);
}
