import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken } from '../../../agent/src/server/auth.js';
import { AUTH, memoryLogger, testServer, TOKEN, validBody } from './harness.js';

const ROUTES: Array<{ method: 'GET' | 'POST' | 'DELETE'; url: string }> = [
  { method: 'GET', url: '/metrics' },
  { method: 'GET', url: '/v1/openapi.json' },
  { method: 'POST', url: '/v1/workspaces' },
  { method: 'GET', url: '/v1/workspaces' },
  { method: 'GET', url: '/v1/workspaces/ws-1' },
  { method: 'DELETE', url: '/v1/workspaces/ws-1' },
  { method: 'GET', url: '/v1/workspaces/ws-1/events' },
  { method: 'GET', url: '/no/such/route' },
];

describe('static bearer token', () => {
  const { app, jobs } = testServer();
  beforeAll(async () => {
    await jobs.submit({ id: 'ws-1', repository: 'octo/hello' });
    jobs.finish('ws-1', 'ready');
  });

  it('leaves GET /health open', async () => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', version: '9.9.9-test' });
  });

  const cases: Array<[string, Record<string, string>]> = [
    ['no Authorization header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token-at-all' }],
    ['the right token one character short', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['Basic auth', { authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}` }],
    ['Bearer without a token', { authorization: 'Bearer ' }],
    ['the token without a scheme', { authorization: TOKEN }],
  ];
  for (const [what, headers] of cases) {
    it(`refuses ${what} on every other route with 401 and WWW-Authenticate`, async () => {
      for (const route of ROUTES) {
        const res = await app.inject({
          ...route,
          headers: { ...headers, 'content-type': 'application/json' },
          payload: route.method === 'POST' ? validBody('ws-2') : undefined,
        });
        expect(res.statusCode, `${route.method} ${route.url}`).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        expect(res.json()).toEqual({ code: 'UNAUTHENTICATED', message: expect.any(String) });
      }
      expect(jobs.submitted.map((b) => b.id)).not.toContain('ws-2');
    });
  }

  it('accepts the token on every route (scheme case-insensitive)', async () => {
    for (const route of ROUTES.filter((r) => r.method === 'GET' && !r.url.startsWith('/no/'))) {
      const res = await app.inject({ ...route, headers: { authorization: `bearer ${TOKEN}` } });
      expect(res.statusCode, route.url).toBe(200);
    }
  });

  it('answers unknown routes 404 in the API shape once authenticated', async () => {
    const res = await app.inject({ method: 'GET', url: '/no/such/route', headers: AUTH });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ code: 'NOT_FOUND', message: 'no route GET /no/such/route' });
  });
});

describe('bearerToken', () => {
  it('takes only a single visible-ASCII token after Bearer', () => {
    expect(bearerToken('Bearer abc.def-ghi')).toBe('abc.def-ghi');
    expect(bearerToken('BEARER abc')).toBe('abc');
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken('Bearer')).toBeNull();
    expect(bearerToken('Token abc')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
});

describe('JWT checked against a JWKS URL', () => {
  const AUDIENCE = 'warmstart-agent';
  const ISSUER = 'https://cp.example';
  let jwksServer: Server;
  let jwksUrl: string;
  let key: CryptoKey;
  let otherKey: CryptoKey;
  let jwksRequests = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    otherKey = (await generateKeyPair('RS256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwksServer = createServer((req, res) => {
      jwksRequests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  async function sign(
    claims: JWTPayload = {},
    options: { signWith?: CryptoKey; aud?: string; iss?: string; exp?: string | number | null } = {},
  ): Promise<string> {
    let jwt = new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('control-plane')
      .setIssuedAt()
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuer(options.iss ?? ISSUER);
    if (options.exp !== null) jwt = jwt.setExpirationTime(options.exp ?? '5m');
    return jwt.sign(options.signWith ?? key);
  }

  function server(extra: { token?: string } = {}) {
    const s = testServer({ auth: { mode: 'bearer', jwt: { jwksUrl, audience: AUDIENCE, issuer: ISSUER }, ...extra } });
    return s;
  }

  it('accepts a good token and refuses wrong audience, issuer, expired, bad signature, no exp', async () => {
    const { app } = server();
    const get = async (token: string): Promise<number> =>
      (await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: `Bearer ${token}` } })).statusCode;

    expect(await get(await sign())).toBe(200);
    expect(await get(await sign({}, { aud: 'someone-else' }))).toBe(401);
    expect(await get(await sign({}, { iss: 'https://evil.example' }))).toBe(401);
    expect(await get(await sign({}, { exp: Math.floor(Date.now() / 1000) - 60 }))).toBe(401);
    expect(await get(await sign({}, { signWith: otherKey }))).toBe(401);
    expect(await get(await sign({}, { exp: null }))).toBe(401);
    const good = await sign();
    expect(await get(`${good.slice(0, -4)}AAAA`)).toBe(401);
    expect(await get('not.a.jwt')).toBe(401);
    // jose caches the key set: one fetch for all of the above.
    expect(jwksRequests).toBe(1);
  });

  it('holds a workspace-scoped token to its workspace', async () => {
    const { app, jobs } = server();
    await jobs.submit({ id: 'mine', repository: 'octo/a' });
    await jobs.submit({ id: 'theirs', repository: 'octo/b' });
    const auth = { authorization: `Bearer ${await sign({ workspace: 'mine' })}` };

    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/mine', headers: auth })).statusCode).toBe(200);
    const other = await app.inject({ method: 'GET', url: '/v1/workspaces/theirs', headers: auth });
    expect(other.statusCode).toBe(403);
    expect(other.json()).toEqual({ code: 'FORBIDDEN', message: expect.any(String) });
    expect((await app.inject({ method: 'DELETE', url: '/v1/workspaces/theirs', headers: auth })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/theirs/events', headers: auth })).statusCode).toBe(403);

    const list = await app.inject({ method: 'GET', url: '/v1/workspaces', headers: auth });
    expect(list.json().workspaces.map((w: { id: string }) => w.id)).toEqual(['mine']);

    const create = (id: string) =>
      app.inject({ method: 'POST', url: '/v1/workspaces', headers: { ...auth, 'content-type': 'application/json' }, payload: validBody(id) });
    expect((await create('other-new')).statusCode).toBe(403);
    expect(jobs.submitted.map((b) => b.id)).not.toContain('other-new');

    const unscoped = { authorization: `Bearer ${await sign()}` };
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/theirs', headers: unscoped })).statusCode).toBe(200);
  });

  it('401 when the key set cannot be fetched, logged as a warning without the token', async () => {
    const { logger, output } = memoryLogger();
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/jwks`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const { app } = testServer({ logger, auth: { mode: 'bearer', jwt: { jwksUrl: deadUrl, audience: AUDIENCE, issuer: ISSUER } } });
    const token = await sign();
    const res = await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: `Bearer ${token}` } });
    expect(res.statusCode).toBe(401);
    const lines = output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.find((l) => l.msg === 'JWT refused')).toMatchObject({ level: 40 });
    expect(output()).not.toContain(token.split('.')[2]);
    expect(output()).not.toContain(token.split('.')[1]);
  });

  it('refuses a workspace claim that is not a string', async () => {
    const { app, jobs } = server();
    await jobs.submit({ id: 'mine', repository: 'octo/a' });
    const auth = { authorization: `Bearer ${await sign({ workspace: 42 })}` };
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/mine', headers: auth })).statusCode).toBe(403);
  });

  it('takes the static token or a JWT when both are configured', async () => {
    const { app } = server({ token: TOKEN });
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces', headers: AUTH })).statusCode).toBe(200);
    const jwt = { authorization: `Bearer ${await sign()}` };
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces', headers: jwt })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: 'Bearer nope' } })).statusCode).toBe(401);
  });
});
