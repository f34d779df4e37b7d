import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExistingWorkspaceView, WorkspaceView } from '../../../shared/src/api.js';
import { parseIdempotencyKey } from '../../../agent/src/workspace/idempotency.js';
import { AUTH, JSON_AUTH, testServer, TOKEN, validBody } from './harness.js';

/**
 * A repeated `POST /v1/workspaces` through the real server and auth (the
 * fake job manager applies the real rules, agent/src/workspace/idempotency.ts;
 * test/unit/jobs/local-job-manager.test.ts runs them against records on disk).
 */

type App = ReturnType<typeof testServer>['app'];

const post = (app: App, payload: unknown, headers: Record<string, string> = JSON_AUTH) =>
  app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: JSON.stringify(payload) });

/** The same object with its keys in the opposite order, at every depth. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversed(v)]),
  );
}

describe('POST /v1/workspaces repeated with the same body', () => {
  it('200 with the existing workspace (existing: true) while queued, creating, ready and recovery; keys in any order; nothing new queued', async () => {
    const { app, jobs } = testServer();
    const first = await post(app, validBody('ws-1'));
    expect(first.statusCode).toBe(202);
    expect(first.json()).not.toHaveProperty('existing');
    const createdAt = WorkspaceView.parse(first.json()).createdAt;

    for (const status of ['queued', 'creating', 'ready', 'recovery'] as const) {
      if (status !== 'queued') jobs.finish('ws-1', status);
      const again = await post(app, reversed(validBody('ws-1')));
      expect(again.statusCode, status).toBe(200);
      const view = ExistingWorkspaceView.parse(again.json());
      expect(view).toMatchObject({ id: 'ws-1', status, existing: true, createdAt });
      expect(again.body).not.toContain('git-token-789');
    }
    expect(jobs.submitted).toHaveLength(1);
  });

  it('a retry with fresh secrets (git token, registry password, callback token) is the same request: 200', async () => {
    const { app, jobs } = testServer();
    const first = validBody('ws-1');
    expect((await post(app, first)).statusCode).toBe(202);
    const fresh = {
      ...first,
      gitToken: 'a-freshly-minted-git-token',
      cache: { registry: 'ghcr.io', username: 'bot', password: 'a-fresh-password' },
      callback: { url: 'https://cp.example/api', token: 'a-fresh-callback-token' },
    };
    const again = await post(app, fresh);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: 'ws-1', existing: true });
    expect(jobs.submitted).toHaveLength(1);
  });

  it('another body for the id is still 409 WORKSPACE_EXISTS, down to whether a secret is given', async () => {
    const { app } = testServer();
    const { gitToken: _given, ...withoutToken } = validBody('ws-1');
    expect((await post(app, validBody('ws-1'))).statusCode).toBe(202);
    for (const other of [withoutToken, { ...validBody('ws-1'), noPush: true }, { id: 'ws-1', repository: 'octo/hello' }]) {
      const res = await post(app, other);
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ code: 'WORKSPACE_EXISTS' });
    }
  });

  it('a failed workspace is prepared again by the same body (202), not answered as it is', async () => {
    const { app, jobs } = testServer();
    await post(app, validBody('ws-1'));
    jobs.finish('ws-1', 'failed');
    const again = await post(app, validBody('ws-1'));
    expect(again.statusCode).toBe(202);
    expect(again.json()).toMatchObject({ status: 'queued' });
    expect(jobs.submitted).toHaveLength(2);
  });
});

describe('Idempotency-Key', () => {
  const keyed = (key: string): Record<string, string> => ({ ...JSON_AUTH, 'idempotency-key': key });

  it('the same key and body: 200 with the workspace, even once it failed (a key names one request)', async () => {
    const { app, jobs } = testServer();
    expect((await post(app, validBody('ws-1'), keyed('"k-1"'))).statusCode).toBe(202);
    jobs.finish('ws-1', 'failed');
    // Quoted (the structured-field string) or bare: the same key.
    const again = await post(app, validBody('ws-1'), keyed('k-1'));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: 'ws-1', status: 'failed', existing: true });
    expect(jobs.submitted).toHaveLength(1);
  });

  it('422 IDEMPOTENCY_KEY_REUSED for the key with another body, or another workspace; nothing queued', async () => {
    const { app, jobs } = testServer();
    expect((await post(app, validBody('ws-1'), keyed('k-1'))).statusCode).toBe(202);
    const otherBody = await post(app, { ...validBody('ws-1'), configName: 'python' }, keyed('k-1'));
    expect(otherBody.statusCode).toBe(422);
    expect(otherBody.json()).toEqual({ code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringContaining('Idempotency-Key') });
    const otherId = await post(app, validBody('ws-2'), keyed('k-1'));
    expect(otherId.statusCode).toBe(422);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/ws-2', headers: AUTH })).statusCode).toBe(404);
    expect(jobs.submitted).toHaveLength(1);
  });

  it('400 INVALID_ARGUMENT for a key that is empty, too long, not ASCII, or given twice; nothing queued', async () => {
    const { app, jobs } = testServer();
    for (const key of ['""', 'x'.repeat(256), 'schlüssel', 'a b', '"a", "b"', 'a,b']) {
      const res = await post(app, validBody('ws-1'), keyed(key));
      expect(res.statusCode, key).toBe(400);
      expect(res.json()).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('Idempotency-Key') });
    }
    expect(jobs.submitted).toEqual([]);
    expect(() => parseIdempotencyKey(['a', 'b'])).toThrow(/Idempotency-Key/);
    expect(parseIdempotencyKey('"a \\"quoted\\" key"')).toBe('a "quoted" key');
    expect(parseIdempotencyKey('x'.repeat(255))).toHaveLength(255);
    expect(parseIdempotencyKey(undefined)).toBeNull();
  });
});

describe('repeats are per caller', () => {
  const AUDIENCE = 'warmstart-agent';
  const ISSUER = 'https://cp.example';
  let jwks: Server;
  let jwksUrl: string;
  let key: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwks.close(() => resolve())));

  const jwt = (subject: string): Promise<string> =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject(subject)
      .setIssuedAt()
      .setAudience(AUDIENCE)
      .setIssuer(ISSUER)
      .setExpirationTime('5m')
      .sign(key);

  it("one caller's key or body never answers another's: the other gets 409 (or its own 202), never the workspace", async () => {
    const { app, jobs } = testServer({ auth: { mode: 'bearer', token: TOKEN, jwt: { jwksUrl, audience: AUDIENCE, issuer: ISSUER } } });
    const as = async (who: string): Promise<Record<string, string>> => ({
      authorization: `Bearer ${who === 'static' ? TOKEN : await jwt(who)}`,
      'content-type': 'application/json',
      'idempotency-key': 'shared-key',
    });

    expect((await post(app, validBody('ws-1'), await as('alice'))).statusCode).toBe(202);
    // Another subject, the static token: same key, same body, the workspace exists: not theirs to be answered with.
    for (const other of ['bob', 'static']) {
      const res = await post(app, validBody('ws-1'), await as(other));
      expect(res.statusCode, other).toBe(409);
      expect(res.json(), other).toEqual({ code: 'WORKSPACE_EXISTS', message: expect.any(String) });
    }
    // Bob's key is his own: with it he makes his own workspace, not a 422 over alice's use of the same string.
    expect((await post(app, validBody('ws-2'), await as('bob'))).statusCode).toBe(202);
    // And each is answered with their own.
    const alice = await post(app, validBody('ws-1'), await as('alice'));
    expect(alice.statusCode).toBe(200);
    expect(alice.json()).toMatchObject({ id: 'ws-1', existing: true });
    const bob = await post(app, validBody('ws-2'), await as('bob'));
    expect(bob.statusCode).toBe(200);
    expect(bob.json()).toMatchObject({ id: 'ws-2', existing: true });
    expect(jobs.submitted.map((b) => b.id)).toEqual(['ws-1', 'ws-2']);
  });
});
