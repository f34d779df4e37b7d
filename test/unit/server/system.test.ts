import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ApiError, Health, Readiness } from '../../../shared/src/api.js';
import { PromMetrics } from '../../../agent/src/metrics/prom-metrics.js';
import { AUTH, memoryLogger, testServer } from './harness.js';

describe('system routes', () => {
  it('GET /health reports status, version and uptime', async () => {
    const { app } = testServer({ startedAt: Date.now() - 5_500 });
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(Health.parse(res.json())).toEqual({ status: 'ok', version: '9.9.9-test', uptimeSeconds: 5 });
  });

  it('GET /readyz: 200 when taking jobs with the engine answering; 503 in the error shape while draining or with the engine away; no token needed', async () => {
    let engineUp = true;
    const engine = { version: async () => (engineUp ? '27.0' : Promise.reject(new Error('connect ENOENT /var/run/docker.sock'))) };
    const { app, jobs } = testServer({ engine });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(Readiness.parse(ready.json())).toEqual({ ready: true });

    engineUp = false;
    const away = await app.inject({ method: 'GET', url: '/readyz' });
    expect(away.statusCode).toBe(503);
    expect(ApiError.strict().parse(away.json())).toMatchObject({ code: 'DOCKER_UNAVAILABLE', message: expect.stringContaining('ENOENT') });

    jobs.stopAccepting();
    const draining = ApiError.strict().parse((await app.inject({ method: 'GET', url: '/readyz' })).json());
    expect(draining.code).toBe('SHUTTING_DOWN');
    expect(draining.message).toMatch(/shutting down.*Docker engine does not answer/);
    // /health stays 200 for liveness: the process is up.
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('GET /readyz calls an engine that hangs not ready after a bounded wait', async () => {
    const { app } = testServer({ engine: { version: () => new Promise<string>(() => undefined) } });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(ApiError.parse(res.json()).message).toMatch(/no answer within 2000 ms/);
  });

  it('GET /metrics samples the job gauges and serves Prometheus text', async () => {
    const { app, jobs, metrics } = testServer();
    await jobs.submit({ id: 'a', repository: 'octo/a' });
    await jobs.submit({ id: 'b', repository: 'octo/b' });
    jobs.finish('b', 'creating');
    metrics.jobStatus('ready');
    metrics.cache('miss', 'CACHE_IMAGE_MISSING: not there');
    metrics.push('pushed');
    metrics.phase('up', 2000);
    metrics.buildSteps(2, 4);

    const res = await app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'warmstart_jobs_total',
      'warmstart_phase_duration_seconds',
      'warmstart_cache_total',
      'warmstart_pushes_total',
      'warmstart_build_steps_cached_total',
      'warmstart_build_steps_total',
    ]) {
      expect(res.body).toContain(`# TYPE ${name}`);
    }
    expect(res.body).toContain('warmstart_jobs_queued 1');
    expect(res.body).toContain('warmstart_jobs_running 1');
    expect(res.body).toContain('warmstart_pushes_running 0');
  });

  it('GET /metrics: build info, push durations, HTTP requests by route pattern and status, the callback outbox', async () => {
    const metrics = new PromMetrics({ processMetrics: false, version: '9.9.9-test' });
    let pending = 3;
    const { app } = testServer({ metrics, callbacksPending: () => pending });
    metrics.push('pushed', null, 2500);
    metrics.push('failed', 'REGISTRY_PUSH_DENIED: denied', 400);
    metrics.callbackAttempt('retry');
    metrics.callbackAttempt('delivered');
    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'GET', url: '/v1/workspaces/ws-1', headers: AUTH }); // 404: counted under the pattern, not the id
    await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: 'Bearer wrong' } });
    pending = 2;
    const body = (await app.inject({ method: 'GET', url: '/metrics', headers: AUTH })).body;
    expect(body).toContain(`warmstart_build_info{version="9.9.9-test",node="${process.version}"} 1`);
    expect(body).toContain('warmstart_push_duration_seconds_count{status="pushed"} 1');
    expect(body).toContain('warmstart_push_duration_seconds_bucket{le="2.5",status="pushed"} 1');
    expect(body).toContain('warmstart_http_requests_total{method="GET",route="/health",status="200"} 1');
    expect(body).toContain('warmstart_http_requests_total{method="GET",route="/v1/workspaces/:id",status="404"} 1');
    expect(body).toContain('warmstart_http_requests_total{method="GET",route="/v1/workspaces",status="401"} 1');
    expect(body).not.toContain('ws-1');
    expect(body).toContain('warmstart_callback_attempts_total{outcome="retry"} 1');
    expect(body).toContain('warmstart_callbacks_pending 2');
  });

  it("GET /metrics: the event loop's delay since the last scrape, so a loop held for 150 ms shows as such", async () => {
    const metrics = new PromMetrics({ version: '9.9.9-test' });
    const { app } = testServer({ metrics });
    const gauge = (body: string, name: string): number => {
      const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(body);
      expect(m, `${name} in /metrics`).not.toBeNull();
      return Number(m![1]);
    };
    // A scrape closes the window: the next one covers only what follows it.
    await app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const quiet = (await app.inject({ method: 'GET', url: '/metrics', headers: AUTH })).body;
    expect(gauge(quiet, 'nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.1);

    // (node's histogram drops the first tick after a reset: hold the loop a few ticks later)
    await new Promise((resolve) => setTimeout(resolve, 50));
    const until = performance.now() + 150;
    while (performance.now() < until) {
      // the loop is held, as a synchronous parse or hash would hold it
    }
    await new Promise((resolve) => setTimeout(resolve, 30));
    const held = (await app.inject({ method: 'GET', url: '/metrics', headers: AUTH })).body;
    expect(gauge(held, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.14);
    expect(gauge(held, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0.14);
    for (const name of ['nodejs_eventloop_lag_p50_seconds', 'nodejs_eventloop_lag_p90_seconds', 'nodejs_eventloop_lag_seconds']) {
      expect(gauge(held, name)).toBeGreaterThanOrEqual(0);
    }
  });

  it('probes leave no access-log lines (still counted in the metrics); other requests do', async () => {
    const { logger, output } = memoryLogger();
    const metrics = new PromMetrics({ processMetrics: false });
    const { app } = testServer({ logger, metrics });
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    }
    await app.inject({ method: 'GET', url: '/v1/workspaces', headers: AUTH });
    const lines = output()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; req?: { url: string }; res?: unknown });
    const accessLines = lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed');
    expect(accessLines.length).toBe(2);
    expect(lines.filter((l) => l.msg === 'incoming request').map((l) => l.req?.url)).toEqual(['/v1/workspaces']);
    const body = (await app.inject({ method: 'GET', url: '/metrics', headers: AUTH })).body;
    expect(body).toContain('warmstart_http_requests_total{method="GET",route="/health",status="200"} 3');
    expect(body).toContain('warmstart_http_requests_total{method="GET",route="/readyz",status="200"} 3');
  });

  it('GET /v1/openapi.json serves the generated document', async () => {
    const { app } = testServer();
    const res = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe('9.9.9-test');
    expect(Object.keys(doc.paths)).toContain('/v1/workspaces/{id}/events');
  });

  it("validates with the agent's own zod compiler: fastify's ajv and fast-json-stringify compilers are never loaded", async () => {
    const { app } = testServer();
    const bad = await app.inject({ method: 'GET', url: '/v1/workspaces/Not_A_Valid_Id!', headers: AUTH });
    expect(bad.statusCode).toBe(400);
    expect(ApiError.parse(bad.json()).code).toBe('INVALID_REQUEST');
    expect((await app.inject({ method: 'GET', url: '/health' })).json()).toMatchObject({ status: 'ok' });
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    expect(loaded.some((k) => k.includes('/node_modules/fastify/'))).toBe(true);
    expect(loaded.filter((k) => /\/node_modules\/(ajv|@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler)\//.test(k))).toEqual([]);
  });

  it('gives every response an x-request-id', async () => {
    const { app } = testServer();
    const a = await app.inject({ method: 'GET', url: '/health' });
    const b = await app.inject({ method: 'GET', url: '/v1/workspaces' });
    expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});
