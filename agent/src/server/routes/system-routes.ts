import type { FastifyInstance } from 'fastify';
import type { Health, Readiness } from '../../../../shared/src/api.js';
import { describeError } from '../../errors.js';
import { buildOpenApiDocument } from '../../../../shared/src/openapi.js';
import type { JobManager } from '../../jobs/job-manager.js';
import type { Metrics } from '../../metrics/metrics.js';
import { withTimeout } from '../../util/with-timeout.js';

export interface SystemRouteDeps {
  jobs: JobManager;
  metrics: Metrics;
  version: string;
  startedAt: number;
  /** undelivered callbacks, for /metrics */
  callbacksPending?: () => number;
  /** asks the Docker engine whether it answers (resolves or throws); absent: not checked */
  engineAnswers?: () => Promise<unknown>;
}

/** How long `/readyz` waits for the engine before it calls it not ready. */
const ENGINE_CHECK_MS = 2_000;

/**
 * Probes are asked every few seconds by a load balancer or systemd's
 * watchdog: no "incoming request" / "request completed" line for each (two
 * log lines, each serialized and redacted on the event loop, per probe).
 * Their warnings and errors are still logged, and every answer is counted in
 * `warmstart_http_requests_total`.
 */
const PROBE = { logLevel: 'warn' } as const;

/** `/health` and `/readyz` (public), `/metrics`, `/v1/openapi.json`. */
export function registerSystemRoutes(app: FastifyInstance, deps: SystemRouteDeps): void {
  // Built on the first request, not at start-up: converting every schema to JSON Schema costs memory and time an agent may never need.
  let openapi: ReturnType<typeof buildOpenApiDocument> | null = null;

  app.get('/health', PROBE, async (): Promise<Health> => ({
    status: deps.jobs.accepting ? 'ok' : 'shutting-down',
    version: deps.version,
    uptimeSeconds: Math.max(0, Math.floor((Date.now() - deps.startedAt) / 1000)),
  }));

  // Liveness says the process is up; readiness says it takes jobs now: 503 while draining or with the engine away.
  app.get('/readyz', PROBE, async (_request, reply) => {
    const reasons: { check: 'draining' | 'engine'; message: string }[] = [];
    if (!deps.jobs.accepting) reasons.push({ check: 'draining', message: 'the agent is shutting down and takes no new jobs' });
    if (deps.engineAnswers) {
      const problem = await withTimeout(deps.engineAnswers(), ENGINE_CHECK_MS).then(
        () => null,
        (err: unknown) => describeError(err),
      );
      if (problem !== null) reasons.push({ check: 'engine', message: `the Docker engine does not answer: ${problem}` });
    }
    if (reasons.length === 0) return reply.code(200).send({ ready: true } satisfies Readiness);
    // Not ready: the API's one error shape, the first reason's code, every reason in the message.
    const code = reasons[0]!.check === 'draining' ? 'SHUTTING_DOWN' : 'DOCKER_UNAVAILABLE';
    return reply.code(503).send({ code, message: `not ready: ${reasons.map((r) => r.message).join('; ')}` });
  });

  app.get('/metrics', async (_request, reply) => {
    const { running, queued, pushing } = deps.jobs.stats();
    deps.metrics.setGauges({ running, queued, pushing, ...(deps.callbacksPending ? { callbacksPending: deps.callbacksPending() } : {}) });
    const { contentType, body } = await deps.metrics.render();
    return reply.type(contentType).send(body);
  });

  app.get('/v1/openapi.json', async () => (openapi ??= buildOpenApiDocument(deps.version)));
}
