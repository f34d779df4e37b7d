import http from 'node:http';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { EventStreamKeepalive, WorkspaceEventSchema } from '../../../shared/src/api.js';
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

  it('numbers every event (seq); ?after=N sends only the later ones; the route passes after on', async () => {
    server = testServer();
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    for (const text of ['one', 'two', 'three', 'four']) jobs.emit('ws-1', { type: 'log', text });
    jobs.finish('ws-1', 'ready');

    const all = lines((await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1/events', headers: AUTH })).body).map((e) =>
      WorkspaceEventSchema.parse(e),
    );
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    const rest = await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1/events?after=2', headers: AUTH });
    expect(rest.statusCode).toBe(200);
    expect(lines(rest.body)).toEqual(all.slice(2));
    const none = await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1/events?after=4', headers: AUTH });
    expect(none.body).toBe('');
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1/events?after=0', headers: AUTH })).body).toBe(
      all.map((e) => `${JSON.stringify(e)}\n`).join(''),
    );
    expect(jobs.afters).toEqual([undefined, 2, 4, 0]);
  });

  it('400 INVALID_ARGUMENT for an after that is not one whole number from 0, before any stream starts', async () => {
    server = testServer();
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    for (const q of ['after=-1', 'after=x', 'after=1.5', 'after=', 'after=1e3', 'after=%201', 'after=1&after=2', 'after=99999999999999999']) {
      const res = await app.inject({ method: 'GET', url: `/v1/workspaces/ws-1/events?${q}`, headers: AUTH });
      expect(res.statusCode, q).toBe(400);
      expect(res.json(), q).toEqual({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('after') });
    }
    expect(jobs.signals).toHaveLength(0);
  });

  it('writes a keepalive line each interval while the stream is idle, and events in between as they come', async () => {
    server = testServer({ eventsKeepaliveMs: 150 });
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    // Timed from before the request: the server's clock for the first beat starts once it has the request.
    const started = Date.now();
    const req = http.get(`${base}/v1/workspaces/ws-1/events`, { headers: AUTH, agent: false });
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    const next = lineReader(res);

    expect(JSON.parse(await next())).toEqual({ type: 'keepalive' });
    expect(EventStreamKeepalive.parse(JSON.parse(await next()))).toEqual({ type: 'keepalive' });
    const twoBeats = Date.now() - started;
    expect(twoBeats).toBeGreaterThanOrEqual(295);
    expect(twoBeats).toBeLessThan(3_000);

    /** The next event line; keepalives that a slow test run lets in first are skipped. */
    const nextEvent = async (): Promise<unknown> => {
      for (;;) {
        const line = JSON.parse(await next()) as { type: string };
        if (line.type !== 'keepalive') return line;
      }
    };
    jobs.emit('ws-1', { type: 'log', text: 'between beats' });
    expect(await nextEvent()).toMatchObject({ type: 'log', text: 'between beats', seq: 1 });
    // Quiet again: a beat, and nothing else.
    expect(JSON.parse(await next())).toEqual({ type: 'keepalive' });
    jobs.emit('ws-1', { type: 'log', text: 'after a beat' });
    expect(await nextEvent()).toMatchObject({ type: 'log', text: 'after a beat', seq: 2 });
    jobs.finish('ws-1', 'ready');
    await expect(next()).rejects.toThrow('stream ended');
  });

  it('a client that read up to seq N and reconnects with after=N gets exactly the rest: no duplicate, no gap', async () => {
    server = testServer({ eventsKeepaliveMs: 100 });
    const { app, jobs } = server;
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    for (let i = 1; i <= 3; i++) jobs.emit('ws-1', { type: 'log', text: `line ${i}` });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });

    /** Reads event lines (skipping keepalives) until `count` events came; then hangs up. */
    const readSome = async (after: number | null, count: number): Promise<Array<{ seq: number; text: string }>> => {
      const query = after === null ? '' : `?after=${after}`;
      const req = http.get(`${base}/v1/workspaces/ws-1/events${query}`, { headers: AUTH, agent: false });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
      expect(res.statusCode).toBe(200);
      const next = lineReader(res);
      const got: Array<{ seq: number; text: string }> = [];
      while (got.length < count) {
        const line = JSON.parse(await next()) as { type: string; seq: number; text: string };
        if (line.type !== 'keepalive') got.push({ seq: line.seq, text: line.text });
      }
      req.destroy();
      return got;
    };

    const first = await readSome(null, 2);
    expect(first.map((e) => e.text)).toEqual(['line 1', 'line 2']);
    await expect.poll(() => jobs.signals[0]!.aborted, { timeout: 2000 }).toBe(true);
    // More happens while the client is away.
    for (let i = 4; i <= 6; i++) jobs.emit('ws-1', { type: 'log', text: `line ${i}` });

    const second = readSome(first.at(-1)!.seq, 5);
    // ...and while it is back.
    await expect.poll(() => jobs.signals.length, { timeout: 2000 }).toBe(2);
    jobs.emit('ws-1', { type: 'log', text: 'line 7' });
    const rest = await second;
    const texts = [...first, ...rest].map((e) => e.text);
    expect(texts).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 7']);
    expect([...first, ...rest].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
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
