import http from 'node:http';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkspaceEventSchema } from '../../../shared/src/api.js';
import { AUTH, testServer, type TestServer } from './harness.js';

const lines = (body: string): unknown[] =>
  body
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

/** Reads a response line by line as its chunks arrive. */
function lineReader(res: http.IncomingMessage): () => Promise<string> {
  const lines = createInterface({ input: res, crlfDelay: Infinity })[Symbol.asyncIterator]();
  return async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('stream ended');
    return value;
  };
}

describe('GET /v1/workspaces/:id/events', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.app.close();
    server = undefined;
  });

  it('streams every event as one JSON line and ends at a terminal state', async () => {
    server = testServer();
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    jobs.emit('ws-1', { type: 'phase-start', phase: 'clone' });
    jobs.emit('ws-1', { type: 'phase-end', phase: 'clone', ms: 120, status: 'ok' });
    jobs.emit('ws-1', { type: 'log', text: 'Step 1/3' });
    jobs.finish('ws-1', 'ready');

    const res = await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1/events', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(res.body.endsWith('\n')).toBe(true);
    const events = lines(res.body).map((e) => WorkspaceEventSchema.parse(e));
    expect(events.map((e) => `${e.type}:${'phase' in e && e.phase ? e.phase : 'text' in e ? e.text : ''}`)).toEqual([
      'phase-start:clone',
      'phase-end:clone',
      'log:Step 1/3',
    ]);
    expect(events[1]).toMatchObject({ workspaceId: 'ws-1', ms: 120 });
  });

  it('404 for an unknown workspace, before any stream starts', async () => {
    server = testServer();
    const res = await server.app.inject({ method: 'GET', url: '/v1/workspaces/nope/events', headers: AUTH });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('WORKSPACE_NOT_FOUND');
    expect(server.jobs.signals).toHaveLength(0);
  });

  it('over a socket: writes each event as it happens, and aborts the follower when the client leaves', async () => {
    server = testServer();
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    jobs.emit('ws-1', { type: 'phase-start', phase: 'clone' });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });

    const req = http.get(`${base}/v1/workspaces/ws-1/events`, { headers: AUTH, agent: false });
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    expect(res.statusCode).toBe(200);
    const next = lineReader(res);
    expect(JSON.parse(await next())).toMatchObject({ type: 'phase-start', phase: 'clone' });

    // Nothing is buffered until the end: a new event reaches the client while the job runs.
    jobs.emit('ws-1', { type: 'log', text: 'cloning' });
    expect(JSON.parse(await next())).toMatchObject({ type: 'log', text: 'cloning' });

    expect(jobs.signals).toHaveLength(1);
    expect(jobs.signals[0]!.aborted).toBe(false);
    req.destroy();
    await expect.poll(() => jobs.signals[0]!.aborted, { timeout: 2000 }).toBe(true);
  });

  it('aborts open streams when the server closes', async () => {
    server = testServer();
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    // No event yet: the 200 and headers still arrive at once (fetch resolves on headers).
    const res = await fetch(`${base}/v1/workspaces/ws-1/events`, { headers: AUTH });
    expect(res.status).toBe(200);
    await expect.poll(() => jobs.signals.length).toBe(1);
    await app.close();
    server = undefined;
    expect(jobs.signals[0]!.aborted).toBe(true);
    await res.text().catch(() => '');
  });
});
