import { describe, expect, it } from 'vitest';
import { memoryLogger, testServer, TOKEN, validBody } from './harness.js';

const SECRETS = [TOKEN, 'registry-password-123', 'git-token-789', 'callback-token-456'];

describe('logging', () => {
  it('never writes the Authorization header or secrets from a body, on success, refusal or failure', async () => {
    const { logger, output } = memoryLogger();
    const { app, jobs } = testServer({ logger });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: validBody('a') })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: validBody('a') })).statusCode).toBe(409);
    const invalid = { ...validBody('b'), cache: { registry: 'ghcr.io', password: 'registry-password-123', extra: 1 } };
    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: invalid })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: `Bearer ${TOKEN}x` } })).statusCode).toBe(401);
    jobs.failWith = Object.assign(new Error('boom'), { config: { password: 'registry-password-123' } });
    const failed = await app.inject({ method: 'GET', url: '/v1/workspaces', headers });
    expect(failed.statusCode).toBe(500);

    const log = output();
    expect(log).toContain('"service":"warmstart"');
    for (const secret of SECRETS) expect(log).not.toContain(secret);

    // The unknown error is logged, with the request id the client got back.
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const error = lines.find((l) => l.level === 50);
    expect(error).toMatchObject({ reqId: failed.headers['x-request-id'], msg: 'request failed', err: { message: 'boom' } });
  });

  it('redacts secrets wherever the code puts them in a log object', () => {
    const { logger, output } = memoryLogger();
    logger.info(
      {
        req: { headers: { authorization: `Bearer ${TOKEN}` } },
        password: 'registry-password-123',
        body: { gitToken: 'git-token-789', cache: { password: 'registry-password-123' }, callback: { token: 'callback-token-456' } },
        job: { cache: { password: 'registry-password-123' }, callback: { token: 'callback-token-456' } },
        request: { headers: { authorization: `Bearer ${TOKEN}` } },
      },
      'with secrets',
    );
    const log = output();
    for (const secret of SECRETS) expect(log).not.toContain(secret);
    expect(log).toContain('[redacted]');
    expect(JSON.parse(log).job.cache.password).toBe('[redacted]');
  });
});
