/**
 * The GitHub App client (agent/src/registry/github-app.ts) against the
 * GitHub API stand-in (test/support/github-api-standin.ts) over real HTTP on
 * loopback, and the stand-in itself asked directly: it must refuse what
 * GitHub refuses (a bad JWT 401, an unknown installation 404, a permission
 * or repository not in the installation 422), or the security tests built on
 * it would pass against a GitHub that does not exist.
 */
import { createSign, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WarmstartError } from '../../../agent/src/errors.js';
import { githubApp } from '../../../agent/src/registry/github-app.js';
import { startGithubApiStandIn, type GithubApiStandIn } from '../../support/github-api-standin.js';

const APP_ID = '31337';
const INSTALLATION = '4242';
const pem = (): string => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const key = pem();
const otherKey = pem();

/** An RS256 JWT as GitHub expects one from an App, with claims to spoil. */
function jwt(claims: Record<string, unknown>, signWith = key, alg = 'RS256'): string {
  const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${enc({ alg, typ: 'JWT' })}.${enc(claims)}`;
  const sig = createSign('RSA-SHA256').update(body).sign(signWith, 'base64url');
  return `${body}.${sig}`;
}
const now = (): number => Math.floor(Date.now() / 1000);
const good = (): Record<string, unknown> => ({ iss: APP_ID, iat: now() - 30, exp: now() + 540 });

describe('the GitHub API stand-in refuses what GitHub refuses', () => {
  let api: GithubApiStandIn;
  beforeAll(async () => {
    api = await startGithubApiStandIn({
      appId: APP_ID,
      key,
      installationId: INSTALLATION,
      account: 'acme',
      granted: { contents: 'read', packages: 'read', metadata: 'read' },
      repositories: ['app'],
    });
  });
  afterAll(async () => api?.close());

  const call = async (
    method: string,
    path: string,
    bearer: string | null,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(`${api.url}${path}`, {
      method,
      headers: { ...(bearer !== null ? { authorization: `Bearer ${bearer}` } : {}), 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const routes: [string, string][] = [
    ['POST', `/app/installations/${INSTALLATION}/access_tokens`],
    ['GET', `/app/installations/${INSTALLATION}`],
    ['GET', '/repos/acme/app/installation'],
  ];

  it('401 on every route for a missing, foreign-signed, unsigned, expired, too long, future or other-App JWT, and for an installation token', async () => {
    const installationToken = (await call('POST', `/app/installations/${INSTALLATION}/access_tokens`, jwt(good()), {})).body.token as string;
    expect(installationToken).toMatch(/^ghs_/);
    const bad: [string, string | null][] = [
      ['none', null],
      ['signed by another key', jwt(good(), otherKey)],
      ['alg HS256', jwt(good(), key, 'HS256')],
      ['expired', jwt({ ...good(), exp: now() - 5 })],
      ['valid for an hour', jwt({ ...good(), exp: now() + 3600 })],
      ['issued in the future', jwt({ ...good(), iat: now() + 600 })],
      ['another App', jwt({ ...good(), iss: '1' })],
      ['an installation token', installationToken],
    ];
    for (const [method, path] of routes) {
      for (const [why, bearer] of bad) {
        const r = await call(method, path, bearer, method === 'POST' ? {} : undefined);
        expect(r.status, `${method} ${path} with ${why}`).toBe(401);
      }
      expect((await call(method, path, jwt(good()), method === 'POST' ? {} : undefined)).status).toBeLessThan(300);
    }
  });

  it('404 for an unknown installation and for a repository the installation does not cover', async () => {
    expect((await call('POST', '/app/installations/999/access_tokens', jwt(good()), {})).status).toBe(404);
    expect((await call('GET', '/app/installations/999', jwt(good()))).status).toBe(404);
    expect((await call('GET', '/repos/acme/other/installation', jwt(good()))).status).toBe(404);
    expect((await call('GET', '/repos/evil/app/installation', jwt(good()))).status).toBe(404);
    const found = await call('GET', '/repos/ACME/App/installation', jwt(good()));
    expect(found).toMatchObject({ status: 200, body: { id: Number(INSTALLATION), account: { login: 'acme' } } });
  });

  it('422 for a permission not granted, granted lower, or of no known level, and for a repository not in the installation', async () => {
    const ask = (body: unknown) => call('POST', `/app/installations/${INSTALLATION}/access_tokens`, jwt(good()), body);
    expect((await ask({ permissions: { issues: 'read' } })).status).toBe(422);
    expect((await ask({ permissions: { packages: 'write' } })).status).toBe(422);
    expect((await ask({ permissions: { contents: 'sudo' } })).status).toBe(422);
    expect((await ask({ repositories: ['other'], permissions: { contents: 'read' } })).status).toBe(422);
    const ok = await ask({ repositories: ['app'], permissions: { contents: 'read' } });
    expect(ok).toMatchObject({ status: 201, body: { permissions: { contents: 'read' }, repository_selection: 'selected' } });
    expect(api.allows(ok.body.token as string, 'app')).toBe(true);
    expect(api.allows(ok.body.token as string, 'other')).toBe(false);
  });
});

describe('the GitHub App client against the stand-in', () => {
  let api: GithubApiStandIn;
  beforeAll(async () => {
    api = await startGithubApiStandIn({
      appId: APP_ID,
      key,
      installationId: INSTALLATION,
      account: 'acme',
      granted: { contents: 'read', packages: 'write' },
      repositories: ['app'],
    });
  });
  afterAll(async () => api?.close());
  const app = (o: { appId?: string; privateKey?: string; installationId?: string } = {}) =>
    githubApp({ appId: o.appId ?? APP_ID, privateKey: o.privateKey ?? key, installationId: o.installationId ?? INSTALLATION, baseUrl: api.url });
  const failure = (p: Promise<unknown>): Promise<WarmstartError> =>
    p.then(
      () => Promise.reject(new Error('it succeeded')),
      (e: unknown) => e as WarmstartError,
    );

  it('gets a registry token and a clone token, each with only what it asked for', async () => {
    const a = app();
    const creds = await a.registry.get('ghcr.io', undefined, { githubRepository: 'app' });
    expect(api.issued.find((t) => t.token === creds?.password)).toEqual({
      token: creds?.password,
      repositories: ['app'],
      permissions: { packages: 'write' },
    });
    const clone = await a.cloneToken({ owner: 'acme', name: 'app' });
    expect(api.issued.find((t) => t.token === clone)).toEqual({ token: clone, repositories: ['app'], permissions: { contents: 'read' } });
  });

  it('a wrong key or App id: 401, said as such', async () => {
    for (const a of [app({ privateKey: otherKey }), app({ appId: '1' })]) {
      const e = await failure(a.registry.get('ghcr.io'));
      expect(e).toMatchObject({ code: 'GITHUB_APP_AUTH_FAILED', message: expect.stringContaining('rejected the App JWT') });
      expect(e.detail).toMatch(/^HTTP 401: /);
      expect((await failure(a.cloneToken({ owner: 'acme', name: 'app' }))).detail).toMatch(/^HTTP 401: /);
    }
  });

  it('an unknown installation: 404; a repository outside the installation: no clone token, the registry token installation-wide', async () => {
    const e = await failure(app({ installationId: '999' }).registry.get('ghcr.io'));
    expect(e.message).toBe('GitHub App installation 999 not found');
    const a = app();
    const before = api.issued.length;
    const clone = await failure(a.cloneToken({ owner: 'acme', name: 'elsewhere' }));
    expect(clone.message).toContain('the GitHub App is not installed on acme/elsewhere');
    expect(api.issued.length).toBe(before);
    // GitHub answers 422 for the narrowed registry token: the installation-wide one is used instead.
    const creds = await a.registry.get('ghcr.io', undefined, { githubRepository: 'elsewhere' });
    expect(api.issued.find((t) => t.token === creds?.password)?.repositories).toBeNull();
    expect(api.requests.some((r) => r.route === 'create-token' && r.status === 422)).toBe(true);
  });
});
