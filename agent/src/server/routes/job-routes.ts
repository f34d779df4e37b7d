import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JobList, JobView } from '../../../../shared/src/api.js';
import { JobParams } from '../../../../shared/src/openapi.js';
import { parseAfter } from '../../events/event-seq.js';
import { jobVisible, type ResourceJobs } from '../../jobs/resource-jobs.js';
import { apiError } from '../http-error.js';
import { DEFAULT_EVENTS_KEEPALIVE_MS, eventStreams } from './events-route.js';

/** Where a job is read: the `Location` of the 202 that accepted it. */
export function jobLocation(id: string): string {
  return `/v1/jobs/${id}`;
}

/** The 202 of an accepted machine or image job: its view, with its address in `Location`. */
export function accepted(reply: FastifyReply, view: JobView): FastifyReply {
  return reply.code(202).header('location', jobLocation(view.id)).send(view);
}

/** The workspace a caller's token is scoped to (a JWT's workspace claim); undefined for a node-wide token. */
function scopeOf(request: FastifyRequest): string | undefined {
  const p = request.principal;
  return p?.kind === 'jwt' ? p.workspace : undefined;
}

/** The job, if the caller may see it (resource-jobs.ts jobVisible); 404 JOB_NOT_FOUND otherwise. */
function visibleJob(jobs: ResourceJobs, request: FastifyRequest, id: string): JobView {
  const view = jobs.get(id);
  if (view === null || !jobVisible(view, scopeOf(request))) throw apiError('JOB_NOT_FOUND', `no job ${id} on this node`);
  return view;
}

/**
 * `/v1/jobs/:jobId`: the status of a machine or image job, and its events
 * as NDJSON in the workspace events' format (events-route.ts): the events
 * so far (those with a `seq` above `?after=`), then new ones until the job
 * ends, with a keepalive line when it is quiet. The parameter is `jobId`,
 * not `id`: the auth hook reads `id` as a workspace id (auth.ts).
 */
export function registerJobRoutes(app: FastifyInstance, jobs: ResourceJobs, options: { keepaliveMs?: number } = {}): void {
  const stream = eventStreams(app, options.keepaliveMs ?? DEFAULT_EVENTS_KEEPALIVE_MS);

  app.get('/v1/jobs', async (request): Promise<JobList> => {
    const scopedTo = scopeOf(request);
    return { jobs: jobs.list().filter((view) => jobVisible(view, scopedTo)) };
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
      return stream(reply, (signal) => jobs.events(jobId, after, signal));
    },
  );
}
