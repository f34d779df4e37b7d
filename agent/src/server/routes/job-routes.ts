import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JobEvent, JobView } from '../../../../shared/src/api.js';
import { JobParams } from '../../../../shared/src/openapi.js';
import { parseAfter } from '../../events/event-seq.js';
import { jobVisible, type ResourceJobs } from '../../jobs/resource-jobs.js';
import { apiError } from '../http-error.js';
import { DEFAULT_EVENTS_KEEPALIVE_MS, KEEPALIVE_LINE } from './events-route.js';

/** Where a job is read: the `Location` of the 202 that accepted it. */
export function jobLocation(id: string): string {
  return `/v1/jobs/${id}`;
}

/** The 202 of an accepted machine or image job: its view, with its address in `Location`. */
export function accepted(reply: FastifyReply, view: JobView): FastifyReply {
  return reply.code(202).header('location', jobLocation(view.id)).send(view);
}

/** The job, if the caller may see it (resource-jobs.ts jobVisible); 404 JOB_NOT_FOUND otherwise. */
function visibleJob(jobs: ResourceJobs, request: FastifyRequest, id: string): JobView {
  const view = jobs.get(id);
  const p = request.principal;
  const scopedTo = p?.kind === 'jwt' ? p.workspace : undefined;
  if (view === null || !jobVisible(view, scopedTo)) throw apiError('JOB_NOT_FOUND', `no job ${id} on this node`);
  return view;
}

/**
 * The events as NDJSON lines, with the workspace stream's keepalive line
 * (events-route.ts) after every `ms` without one, so proxies that cut idle
 * connections keep the stream open. The pending `next()` is kept across a
 * keepalive, so no event is lost or read twice.
 */
async function* ndjson(source: AsyncIterable<JobEvent>, ms: number, signal: AbortSignal, onStart: () => void): AsyncGenerator<string> {
  onStart();
  try {
    yield* lines(source, ms);
  } catch (err) {
    // After the 200 a failure can only cut the stream short (as in events-route.ts).
    if (!signal.aborted) throw err;
  }
}

async function* lines(source: AsyncIterable<JobEvent>, ms: number): AsyncGenerator<string> {
  const it = source[Symbol.asyncIterator]();
  let pending = it.next();
  void pending.catch(() => undefined); // a rejection is seen by the race below; this only keeps it from counting as unhandled meanwhile
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const quiet = new Promise<'quiet'>((resolve) => (timer = setTimeout(() => resolve('quiet'), ms)));
      const next = await Promise.race([pending, quiet]).finally(() => clearTimeout(timer));
      if (next === 'quiet') {
        yield KEEPALIVE_LINE;
        continue;
      }
      if (next.done) return;
      pending = it.next();
      void pending.catch(() => undefined);
      yield `${JSON.stringify(next.value)}\n`;
    }
  } finally {
    // The reader went away: the follower ends at the aborted signal, and a pending next() settles then.
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/**
 * `/v1/jobs/:jobId`: the status of a machine or image job, and its events
 * as NDJSON in the workspace events' format (events-route.ts): the events
 * so far (those with a `seq` above `?after=`), then new ones until the job
 * ends, with a keepalive line when it is quiet. The parameter is `jobId`,
 * not `id`: the auth hook reads `id` as a workspace id (auth.ts).
 */
export function registerJobRoutes(app: FastifyInstance, jobs: ResourceJobs, options: { keepaliveMs?: number } = {}): void {
  const keepaliveMs = options.keepaliveMs ?? DEFAULT_EVENTS_KEEPALIVE_MS;
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const controller of open) controller.abort();
  });

  app.get<{ Params: JobParams }>('/v1/jobs/:jobId', { schema: { params: JobParams } }, async (request): Promise<JobView> =>
    visibleJob(jobs, request, request.params.jobId),
  );

  app.get<{ Params: JobParams; Querystring: Record<string, unknown> }>(
    '/v1/jobs/:jobId/events',
    { schema: { params: JobParams } },
    async (request, reply) => {
      const { jobId } = request.params;
      // As on the workspace events route: one whole number from 0, else 400 INVALID_ARGUMENT.
      const after = request.query.after === undefined ? 0 : parseAfter(request.query.after);
      if (after === null) throw apiError('INVALID_ARGUMENT', 'after must be a seq: one whole number from 0, given once');
      visibleJob(jobs, request, jobId);
      const controller = new AbortController();
      open.add(controller);
      reply.raw.once('close', () => {
        controller.abort();
        open.delete(controller);
      });
      const flushHeaders = (): void => {
        if (!reply.raw.headersSent) reply.raw.flushHeaders();
      };
      const events = jobs.events(jobId, after, controller.signal);
      const body = Readable.from(ndjson(events, keepaliveMs, controller.signal, flushHeaders), { objectMode: false });
      return reply
        .code(200)
        .header('content-type', 'application/x-ndjson; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        .header('connection', 'close')
        .send(body);
    },
  );
}
