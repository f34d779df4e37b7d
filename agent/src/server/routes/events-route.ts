import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WorkspaceParams } from '../../../../shared/src/openapi.js';
import type { WorkspaceEvent } from '../../events/events.js';
import type { JobManager } from '../../jobs/job-manager.js';
import { workspaceNotFound } from './workspace-routes.js';

async function* ndjson(events: AsyncIterable<WorkspaceEvent>, signal: AbortSignal, onStart: () => void): AsyncGenerator<string> {
  onStart();
  try {
    for await (const event of events) yield `${JSON.stringify(event)}\n`;
  } catch (err) {
    // A failure after the 200 went out can only cut the stream short: rethrown,
    // fastify logs it and drops the connection so the client sees it broke.
    if (!signal.aborted) throw err;
  }
}

/**
 * `GET /v1/workspaces/:id/events`: NDJSON, one event per line, written as it
 * happens. The job manager's iterator gets a signal that aborts when the
 * client goes away or the server closes, so no follower outlives its reader.
 */
export function registerEventsRoute(app: FastifyInstance, jobs: JobManager): void {
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const controller of open) controller.abort();
  });

  app.get<{ Params: WorkspaceParams }>('/v1/workspaces/:id/events', { schema: { params: WorkspaceParams } }, async (request, reply) => {
    const { id } = request.params;
    if ((await jobs.get(id)) === null) throw workspaceNotFound(id);
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
    const events = jobs.events(id, controller.signal);
    const body = Readable.from(ndjson(events, controller.signal, flushHeaders), { objectMode: false });
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
  });
}
