import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { GoldenDeps } from '../images/golden.js';
import type { JobManager } from '../jobs/job-manager.js';
import type { PrebuildManager } from '../jobs/prebuild-manager.js';
import { ResourceJobs } from '../jobs/resource-jobs.js';
import type { Metrics } from '../metrics/metrics.js';
import { createAuthHook, type AuthOptions } from './auth.js';
import { apiError, clientErrorResponse, handleError, handleNotFound } from './http-error.js';
import { createLogger } from './logger.js';
import { registerEventsRoute } from './routes/events-route.js';
import { registerImageRoutes } from './routes/images.js';
import { registerJobRoutes } from './routes/job-routes.js';
import { registerMachineRoutes, type MachineRouteDeps } from './routes/machines.js';
import { registerPrebuildRoutes } from './routes/prebuild-routes.js';
import { registerSnapshotRoutes } from './routes/snapshots.js';
import { registerSystemRoutes } from './routes/system-routes.js';
import { registerWorkspaceRoutes } from './routes/workspace-routes.js';
import type { TlsOptions } from './tls.js';
import { jsonSerializerCompiler, zodValidatorCompiler } from './validation.js';
import type { DockerEngine } from '../docker/engine.js';

/** Everything the HTTP API needs; buildServer fills in the rest. */
export interface ServerOptions {
  jobs: JobManager;
  metrics: Metrics;
  /** Required: there is no default, so the API is never open by omission. */
  auth: AuthOptions;
  /** Reported by /health and the OpenAPI document. */
  version: string;
  /** ms since the epoch, for uptime; default now. */
  startedAt?: number;
  /** A logger from createLogger (redacting), or false for none; default createLogger() to stdout. */
  logger?: Logger | false;
  /** Request body limit in bytes; default 64 KiB. */
  bodyLimit?: number;
  /** Serve HTTPS with these (see tlsOptionsFromEnv); default plain HTTP. */
  https?: TlsOptions | null;
  /** The machine backends: `/v1/machines` and `/v1/snapshots` exist only when given. */
  machines?: MachineRouteDeps;
  /** The agent's Docker engine, store and config: `/v1/images` exists only when given. */
  images?: GoldenDeps;
  /** Callbacks not yet delivered, sampled for /metrics (absent: not reported). */
  callbacksPending?: () => number;
  /** The Docker engine `/readyz` asks (absent: readiness is only about draining). */
  engine?: Pick<DockerEngine, 'version'>;
  /** Prebuilds: `/v1/prebuilds` exists only when given. */
  prebuilds?: PrebuildManager;
  /** Quiet time before an events stream gets a keepalive line; default 15 s (routes/events-route.ts). */
  eventsKeepaliveMs?: number;
  /** The jobs of `POST /v1/machines` and `POST /v1/images` (`/v1/jobs`); default: kept in memory only. */
  resourceJobs?: ResourceJobs;
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
/** fastify types these factories by ajv's and fast-json-stringify's own function types; ours return zod results and JSON text. */
const OWN_COMPILERS = {
  buildValidator: () => zodValidatorCompiler,
  buildSerializer: () => jsonSerializerCompiler,
} as unknown as CompilersFactory;

/** The agent's HTTP API as a fastify instance, routes registered, not listening. */
export function buildServer(options: ServerOptions): FastifyInstance {
  // Throws before anything is built when no auth is configured.
  const authenticate = createAuthHook(options.auth);
  const logger: FastifyBaseLogger | false = options.logger === false ? false : (options.logger ?? createLogger());
  const common = {
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    genReqId: () => randomUUID(),
    // Only the documented routes: no implicit HEAD twins (a HEAD on the events
    // route would start a follower for nothing).
    exposeHeadRoutes: false,
    // While closing, answer through our own handlers (the job manager says
    // SHUTTING_DOWN) rather than fastify's differently shaped 503 body.
    return503OnClosing: false,
    // Every refusal in the one error shape, also those made before a route
    // runs: a malformed URL or an over-long path segment (frameworkErrors),
    // and what node's HTTP parser refuses (clientErrorHandler).
    frameworkErrors: handleError,
    clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      this.log.info({ code: err.code ?? 'unknown' }, 'malformed request refused');
      // Like node itself: no answer in the middle of one already going out
      // (`_httpMessage` is node's response in flight on this socket).
      const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
      if (socket.writable && !inFlight?.headersSent) socket.write(clientErrorResponse(err));
      socket.destroy();
    },
    // Node answers an HTTP/1.1 request without Host with a bare 400; the hook below does it in our shape.
    http: { requireHostHeader: false },
    // Route schemas are zod schemas and no route declares a response schema:
    // fastify's default compilers would load ajv and fast-json-stringify for
    // nothing, about 6 MB of a daemon's memory (test/bench/README.md).
    schemaController: { compilersFactory: OWN_COMPILERS },
    ...(logger === false ? { logger: false } : { loggerInstance: logger }),
  };
  // The https variant differs only in its server type (https.Server); routes,
  // hooks and inject are the same, so it is typed as the plain one.
  const app: FastifyInstance = options.https
    ? (fastify({ ...common, https: { ...options.https, requireHostHeader: false } }) as unknown as FastifyInstance)
    : fastify(common);
  // An Expect other than 100-continue: node would answer a bare 417.
  app.server.on('checkExpectation', (_req, res: ServerResponse) => {
    const body = JSON.stringify({ code: 'INVALID_REQUEST', message: 'the Expect header asks for something this server does not do' });
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });

  app.setValidatorCompiler(zodValidatorCompiler);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  // JSON only: any other body type is 415 before it is read.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null);

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  app.addHook('onRequest', async (request) => {
    const { httpVersionMajor, httpVersionMinor } = request.raw;
    if (httpVersionMajor === 1 && httpVersionMinor >= 1 && request.headers.host === undefined) {
      throw apiError('INVALID_REQUEST', 'an HTTP/1.1 request needs a Host header');
    }
  });
  app.addHook('onRequest', authenticate);
  // Counted by the route's pattern (`/v1/workspaces/:id`), never the URL: the labels stay few.
  app.addHook('onResponse', async (request, reply) => {
    options.metrics.httpRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode);
  });
  if (options.auth.mode === 'none') app.log.warn('API authentication is disabled (auth mode none)');

  registerSystemRoutes(app, {
    jobs: options.jobs,
    metrics: options.metrics,
    version: options.version,
    startedAt: options.startedAt ?? Date.now(),
    ...(options.engine ? { engineAnswers: () => options.engine!.version() } : {}),
    ...(options.callbacksPending ? { callbacksPending: options.callbacksPending } : {}),
  });
  registerWorkspaceRoutes(app, options.jobs);
  registerEventsRoute(app, options.jobs, options.eventsKeepaliveMs === undefined ? {} : { keepaliveMs: options.eventsKeepaliveMs });
  const accepting = (): boolean => options.jobs.accepting;
  if (options.machines || options.images) {
    const resourceJobs = options.resourceJobs ?? new ResourceJobs({ store: null, logger: app.log });
    registerJobRoutes(app, resourceJobs, options.eventsKeepaliveMs === undefined ? {} : { keepaliveMs: options.eventsKeepaliveMs });
    if (options.machines) {
      registerMachineRoutes(app, options.machines, resourceJobs, accepting);
      registerSnapshotRoutes(app, options.machines);
    }
    if (options.images) registerImageRoutes(app, options.images, resourceJobs, accepting);
  }
  if (options.prebuilds) registerPrebuildRoutes(app, options.prebuilds, accepting);
  return app;
}
