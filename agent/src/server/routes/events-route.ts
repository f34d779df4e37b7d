import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { WorkspaceParams } from '../../../../shared/src/openapi.js';
import { parseAfter } from '../../events/event-seq.js';
import type { JobManager } from '../../jobs/job-manager.js';
import { apiError } from '../http-error.js';
import { workspaceNotFound } from './workspace-routes.js';

/** How long a stream may be quiet before a keepalive line goes out, by default. */
export const DEFAULT_EVENTS_KEEPALIVE_MS = 15_000;

/** The line written while the stream is idle (shared/src/api.ts EventStreamKeepalive). */
export const KEEPALIVE_LINE = '{"type":"keepalive"}\n';

export interface EventsRouteOptions {
  /**
   * Milliseconds without a line after which a keepalive line is written,
   * so a proxy between agent and control plane does not cut a quiet
   * stream as idle, and a client can tell a quiet job from a dead
   * connection. DEFAULT_EVENTS_KEEPALIVE_MS unless given (tests give less).
   */
  keepaliveMs?: number;
}

const IDLE = Symbol('idle');

/**
 * The events as NDJSON lines, with a keepalive line after every
 * `keepaliveMs` without one. The wait for the next event is kept across a
 * keepalive (the same pending `next()`), so none is lost or read twice.
 * Workspace streams and job streams (job-routes.ts) alike.
 */
export async function* ndjson<E>(events: AsyncIterable<E>, signal: AbortSignal, keepaliveMs: number, onStart: () => void): AsyncGenerator<string> {
  onStart();
  const iterator = events[Symbol.asyncIterator]();
  let pending = iterator.next();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<typeof IDLE>((resolve) => (timer = setTimeout(() => resolve(IDLE), keepaliveMs)));
      const next = await Promise.race([pending, idle]).finally(() => clearTimeout(timer));
      if (next === IDLE) {
        yield KEEPALIVE_LINE;
        continue;
      }
      if (next.done) return;
      pending = iterator.next();
      yield `${JSON.stringify(next.value)}\n`;
    }
  } catch (err) {
    // A failure after the 200 went out can only cut the stream short: rethrown,
    // fastify logs it and drops the connection so the client sees it broke.
    if (!signal.aborted) throw err;
  } finally {
    // The client went away: the follower ends at the aborted signal; a pending next() settles then.
    void Promise.resolve(iterator.return?.()).catch(() => undefined);
  }
}

/**
 * Streams of events for a server's routes: each gets a signal that aborts
 * when its client goes away or the server closes, so no follower outlives
 * its reader. Workspace events (below) and job events (job-routes.ts).
 */
export function eventStreams(
  app: FastifyInstance,
  keepaliveMs: number,
): <E>(reply: FastifyReply, follow: (signal: AbortSignal) => AsyncIterable<E>) => FastifyReply {
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const controller of open) controller.abort();
  });
  return (reply, follow) => {
    const controller = new AbortController();
    open.add(controller);
    reply.raw.once('close', () => {
      controller.abort();
      open.delete(controller);
    });
    // fastify sets the headers just before it starts reading the stream;
    // send them then, so a follower of a quiet workspace sees the 200 at once.
    const flushHeaders = (): void => {
      if (!reply.raw.headersSent) reply.raw.flushHeaders();
    };
    const body = Readable.from(ndjson(follow(controller.signal), controller.signal, keepaliveMs, flushHeaders), { objectMode: false });
    return (
      reply
        .code(200)
        .header('content-type', 'application/x-ndjson; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        // A stream holds its connection for minutes; close it after, rather than
        // leave an idle keep-alive socket that would hold up server.close().
        .header('connection', 'close')
        .send(body)
    );
  };
}

/**
 * `GET /v1/workspaces/:id/events[?after=<seq>]`: NDJSON, one event per line,
 * written as it happens, with keepalive lines while it is quiet. `after`
 * resumes a stream: only events with a higher `seq` (events/event-seq.ts).
 */
export function registerEventsRoute(app: FastifyInstance, jobs: JobManager, options: EventsRouteOptions = {}): void {
  const stream = eventStreams(app, options.keepaliveMs ?? DEFAULT_EVENTS_KEEPALIVE_MS);
  app.get<{ Params: WorkspaceParams; Querystring: Record<string, unknown> }>(
    '/v1/workspaces/:id/events',
    { schema: { params: WorkspaceParams } },
    async (request, reply) => {
      const { id } = request.params;
      // Checked here rather than by a schema, for the error code the API documents for it.
      const rawAfter = request.query.after;
      const after = rawAfter === undefined ? undefined : parseAfter(rawAfter);
      if (after === null) throw apiError('INVALID_ARGUMENT', 'after must be a seq: one whole number from 0, given once');
      if ((await jobs.get(id)) === null) throw workspaceNotFound(id);
      return stream(reply, (signal) => jobs.events(id, signal, after === undefined ? {} : { after }));
    },
  );
}
