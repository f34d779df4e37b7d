import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { PrebuildManager } from '../../../agent/src/jobs/prebuild-manager.js';
import type { PipelineDeps } from '../../../agent/src/workspace/pipeline.js';
import { JSON_AUTH, memoryLogger, TOKEN, testServer } from './harness.js';

// The routes and the manager are real; the build slots never come free, so
// no prebuild runs: what is under test is what the API accepts and refuses.
const AUDIENCE = 'warmstart-agent';
const ISSUER = 'https://cp.example';

describe('/v1/prebuilds', () => {
  let jwksServer: Server;
  let jwksUrl: string;
  let key: CryptoKey;
  let slotRequests = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwksServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  const sign = (claims: Record<string, unknown>): Promise<string> =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('cp')
      .setIssuedAt()
      .setAudience(AUDIENCE)
      .setIssuer(ISSUER)
      .setExpirationTime('5m')
      .sign(key);

  function server(env: Record<string, string> = { WARMSTART_CACHE_REGISTRY: '127.0.0.1:5000/ns' }) {
    const { logger, output } = memoryLogger();
    const prebuilds = new PrebuildManager({
      deps: { config: configFromEnv(env) } as unknown as PipelineDeps,
      slots: { buildSlot: () => (slotRequests++, new Promise(() => undefined)) },
      logger: pino({ level: 'silent' }),
      allowLocalRepos: false,
    });
    const { app } = testServer({ prebuilds, logger, auth: { mode: 'bearer', token: TOKEN, jwt: { jwksUrl, audience: AUDIENCE, issuer: ISSUER } } });
    return { app, output };
  }

  it('202 at once with a queued prebuild, which GET then reports; no secret in the answers or the log', async () => {
    const { app, output } = server();
    const body = { repository: 'octo/hello', cache: { registry: '127.0.0.1:5000/ns', username: 'bot', password: 'registry-password-123' } };
    const before = slotRequests;
    const res = await app.inject({ method: 'POST', url: '/v1/prebuilds', headers: JSON_AUTH, payload: body });
    expect(res.statusCode).toBe(202);
    const view = res.json();
    expect(view).toMatchObject({ status: 'queued', repository: 'https://github.com/octo/hello.git', configName: null, result: null });
    expect(view.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(slotRequests).toBe(before + 1);
    const got = await app.inject({ method: 'GET', url: `/v1/prebuilds/${view.id}`, headers: JSON_AUTH });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ id: view.id, status: 'queued' });
    expect(res.body + got.body + output()).not.toContain('registry-password-123');
  });

  it.each([
    ['an unknown field', { repository: 'octo/hello', workspaceId: 'x' }, 'INVALID_REQUEST'],
    ['no repository', {}, 'INVALID_REQUEST'],
    ['a push switched off (a prebuild exists to push)', { repository: 'octo/hello', push: { disabled: true } }, 'INVALID_REQUEST'],
    ['a repository that is not one', { repository: 'not a repo' }, 'INVALID_REPOSITORY'],
    ['a local path', { repository: '/etc' }, 'INVALID_REPOSITORY'],
    ['a bad config name', { repository: 'octo/hello', configName: '../x' }, 'INVALID_CONFIG_NAME'],
    ['a username without a password', { repository: 'octo/hello', cache: { registry: '127.0.0.1:5000', username: 'u' } }, 'INVALID_ARGUMENT'],
  ])('%s → 400 %s, nothing queued', async (_what, body, code) => {
    const { app } = server();
    const before = slotRequests;
    const res = await app.inject({ method: 'POST', url: '/v1/prebuilds', headers: JSON_AUTH, payload: body });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe(code);
    expect(slotRequests).toBe(before);
  });

  it('no cache registry on the node or in the body → 400 INVALID_REGISTRY', async () => {
    const { app } = server({});
    const res = await app.inject({ method: 'POST', url: '/v1/prebuilds', headers: JSON_AUTH, payload: { repository: 'octo/hello' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('INVALID_REGISTRY');
  });

  it('GET of an unknown id is 404, of a malformed one 400', async () => {
    const { app } = server();
    expect((await app.inject({ method: 'GET', url: '/v1/prebuilds/6f1d7c52-4b0e-4c1e-9b7a-2f9e8d3c1a00', headers: JSON_AUTH })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/v1/prebuilds/nope', headers: JSON_AUTH })).statusCode).toBe(400);
  });

  it('a workspace-scoped JWT gets 403 FORBIDDEN; a node-wide JWT is taken', async () => {
    const { app } = server();
    const scoped = { authorization: `Bearer ${await sign({ workspace: 'ws-1' })}`, 'content-type': 'application/json' };
    const before = slotRequests;
    const post = await app.inject({ method: 'POST', url: '/v1/prebuilds', headers: scoped, payload: { repository: 'octo/hello' } });
    expect(post.statusCode).toBe(403);
    expect(post.json().code).toBe('FORBIDDEN');
    expect(slotRequests).toBe(before);

    const node = { authorization: `Bearer ${await sign({})}`, 'content-type': 'application/json' };
    const ok = await app.inject({ method: 'POST', url: '/v1/prebuilds', headers: node, payload: { repository: 'octo/hello' } });
    expect(ok.statusCode).toBe(202);
    const get = await app.inject({ method: 'GET', url: `/v1/prebuilds/${ok.json().id}`, headers: scoped });
    expect(get.statusCode).toBe(403);
  });
});
