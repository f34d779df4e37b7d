import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WarmstartError, toErrorBody } from '../../../agent/src/errors.js';
import { githubApp, githubAppCredentials, loadPrivateKey } from '../../../agent/src/registry/github-app.js';

const API = 'https://api.github.com';
const APP_ID = 424242;
const HOUR = 3_600_000;

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Checks an RS256 JWT against our public key and returns its claims. */
function verifyJwt(jwt: string, key: KeyObject): Record<string, unknown> {
  const [h, p, s] = jwt.split('.');
  if (!h || !p || !s) throw new Error(`not a JWT: ${jwt.length} chars`);
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg: string };
  expect(header.alg).toBe('RS256');
  expect(verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))).toBe(true);
  return JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
}

/** Replies like GitHub, recording the Authorization header of each request. */
function tokenEndpoint(installationId: number, tokens: { token: string; expiresAt: Date }[], seen: string[]) {
  let scope = nock(API);
  for (const t of tokens) {
    scope = scope.post(`/app/installations/${installationId}/access_tokens`).reply(function () {
      seen.push(String(this.req.headers.authorization));
      return [201, { token: t.token, expires_at: t.expiresAt.toISOString(), permissions: { packages: 'write', contents: 'read' } }];
    });
  }
  return scope;
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('githubAppCredentials', () => {
  it('gets an installation token with an RS256 app JWT and caches it', async () => {
    const seen: string[] = [];
    const scope = tokenEndpoint(1001, [{ token: 'ghs_first', expiresAt: new Date(Date.now() + HOUR) }], seen);
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1001 });

    const creds = await source.get('ghcr.io');
    expect(creds).toEqual({ registry: 'ghcr.io', username: 'x-access-token', password: 'ghs_first', source: 'github-app' });
    expect(scope.isDone()).toBe(true);

    expect(seen).toHaveLength(1);
    const [scheme, jwt] = seen[0]!.split(' ');
    expect(scheme?.toLowerCase()).toBe('bearer');
    const claims = verifyJwt(jwt!, publicKey);
    expect(String(claims.iss)).toBe(String(APP_ID));

    // Within the lifetime: no request (nock has no interceptor left and the
    // network is disabled, so a request would throw).
    expect((await source.get('GHCR.io'))?.password).toBe('ghs_first');
  });

  it('accepts a PKCS#8 key', async () => {
    const seen: string[] = [];
    const scope = tokenEndpoint(1002, [{ token: 'ghs_p8', expiresAt: new Date(Date.now() + HOUR) }], seen);
    const source = githubAppCredentials({ appId: String(APP_ID), privateKey: pkcs8, installationId: '1002' });
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_p8');
    expect(scope.isDone()).toBe(true);
    verifyJwt(seen[0]!.split(' ')[1]!, publicKey);
  });

  it('fetches a new token once the clock is within the refresh margin', async () => {
    let clock = Date.now();
    const expiresAt = new Date(clock + HOUR);
    const seen: string[] = [];
    const scope = tokenEndpoint(
      1003,
      [
        { token: 'ghs_old', expiresAt },
        { token: 'ghs_new', expiresAt: new Date(clock + 2 * HOUR) },
      ],
      seen,
    );
    const source = githubAppCredentials({
      appId: APP_ID,
      privateKey: pkcs1,
      installationId: 1003,
      now: () => clock,
      refreshMarginMs: 5 * 60_000,
    });
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_old');
    clock = expiresAt.getTime() - 6 * 60_000; // outside the margin: still cached
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_old');
    expect(seen).toHaveLength(1);
    clock = expiresAt.getTime() - 4 * 60_000; // inside the margin
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_new');
    expect(scope.isDone()).toBe(true);
  });

  it('shares one request between concurrent callers', async () => {
    const seen: string[] = [];
    const scope = tokenEndpoint(1004, [{ token: 'ghs_shared', expiresAt: new Date(Date.now() + HOUR) }], seen);
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1004 });
    const all = await Promise.all([source.get('ghcr.io'), source.get('ghcr.io'), source.get('ghcr.io')]);
    expect(all.map((c) => c?.password)).toEqual(['ghs_shared', 'ghs_shared', 'ghs_shared']);
    expect(seen).toHaveLength(1);
    expect(scope.isDone()).toBe(true);
  });

  it('returns null for any host but ghcr.io, without calling GitHub', async () => {
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1005 });
    expect(await source.get('docker.io')).toBeNull();
    expect(await source.get('ghcr.io.evil.test')).toBeNull();
    expect(await source.get('127.0.0.1:5000')).toBeNull();
  });

  it('maps a 401 to GITHUB_APP_AUTH_FAILED with neither the key nor the JWT in it', async () => {
    const seen: string[] = [];
    const scope = nock(API)
      .post('/app/installations/1006/access_tokens')
      .reply(function () {
        seen.push(String(this.req.headers.authorization));
        return [401, { message: 'A JSON web token could not be decoded', documentation_url: 'https://docs.github.com' }];
      });
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1006 });
    const err = await source.get('ghcr.io').then(
      () => null,
      (e: unknown) => e,
    );
    expect(scope.isDone()).toBe(true);
    expect(err).toBeInstanceOf(WarmstartError);
    const we = err as WarmstartError;
    expect(we.code).toBe('GITHUB_APP_AUTH_FAILED');
    expect(we.detail).toContain('401');

    const jwt = seen[0]!.split(' ')[1]!;
    expect(jwt.length).toBeGreaterThan(100);
    const keyBody = pkcs1.split('\n')[1]!; // one line of base64 key material
    for (const text of [we.message, we.detail ?? '', JSON.stringify(we), JSON.stringify(toErrorBody(we)), inspect(we, { depth: 10 })]) {
      expect(text).not.toContain(jwt);
      expect(text).not.toContain(jwt.split('.')[2]!); // the signature alone
      expect(text).not.toContain(keyBody);
    }
  });

  it('maps a missing installation (404) and retries on the next call', async () => {
    const scope = nock(API)
      .post('/app/installations/1007/access_tokens')
      .reply(404, { message: 'Not Found' })
      .post('/app/installations/1007/access_tokens')
      .reply(201, { token: 'ghs_later', expires_at: new Date(Date.now() + HOUR).toISOString() });
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1007 });
    await expect(source.get('ghcr.io')).rejects.toMatchObject({
      code: 'GITHUB_APP_AUTH_FAILED',
      detail: expect.stringContaining('404'),
      message: expect.stringContaining('1007'),
    });
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_later');
    expect(scope.isDone()).toBe(true);
  });

  it('maps a network failure', async () => {
    const scope = nock(API).post('/app/installations/1008/access_tokens').replyWithError({ code: 'ECONNRESET', message: 'socket hang up' });
    const source = githubAppCredentials({ appId: APP_ID, privateKey: pkcs1, installationId: 1008 });
    await expect(source.get('ghcr.io')).rejects.toMatchObject({
      code: 'GITHUB_APP_AUTH_FAILED',
      detail: expect.stringMatching(/^network error/),
    });
    expect(scope.isDone()).toBe(true);
  });

  it('uses baseUrl for GitHub Enterprise Server', async () => {
    const scope = nock('https://ghe.example.test')
      .post('/api/v3/app/installations/1009/access_tokens')
      .reply(201, { token: 'ghs_ghe', expires_at: new Date(Date.now() + HOUR).toISOString() });
    const source = githubAppCredentials({
      appId: APP_ID,
      privateKey: pkcs1,
      installationId: 1009,
      baseUrl: 'https://ghe.example.test/api/v3',
    });
    expect((await source.get('ghcr.io'))?.password).toBe('ghs_ghe');
    expect(scope.isDone()).toBe(true);
  });
});

describe('what the App asks GitHub for', () => {
  it('the registry token asks for packages: write and nothing else; a clone token for contents: read on one repository, after its lookup', async () => {
    const bodies: unknown[] = [];
    const seen: string[] = [];
    const scope = nock(API)
      .post('/app/installations/9/access_tokens', (b: unknown) => (bodies.push(b), true))
      .times(2)
      .reply(201, { token: 'ghs_registry_or_clone', expires_at: new Date(Date.now() + HOUR).toISOString() })
      .get('/repos/acme/app/installation')
      .reply(function () {
        seen.push(String(this.req.headers.authorization));
        return [200, { id: 9, account: { login: 'acme' } }];
      });
    const app = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9 });
    expect((await app.registry.get('ghcr.io'))?.password).toBe('ghs_registry_or_clone');
    expect(await app.cloneToken({ owner: 'acme', name: 'app' })).toBe('ghs_registry_or_clone');
    expect(scope.isDone()).toBe(true);
    expect(bodies).toEqual([{ permissions: { packages: 'write' } }, { repositories: ['app'], permissions: { contents: 'read' } }]);
    // The lookup is the App's own call, signed with its JWT.
    expect(String(verifyJwt(seen[0]!.split(' ')[1]!, publicKey).iss)).toBe(String(APP_ID));
  });

  it("a repository's installation is looked up once for a while; one of another installation, or none, gets no token", async () => {
    let clock = Date.now();
    const scope = nock(API)
      .get('/repos/acme/app/installation')
      .times(2)
      .reply(200, { id: 9 })
      .post('/app/installations/9/access_tokens')
      .times(3)
      .reply(201, () => ({ token: 'ghs_clone', expires_at: new Date(Date.now() + HOUR).toISOString() }))
      .get('/repos/other/app/installation')
      .reply(200, { id: 77 })
      .get('/repos/evil/app/installation')
      .reply(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    const app = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9, now: () => clock });
    expect(await app.cloneToken({ owner: 'acme', name: 'app' })).toBe('ghs_clone');
    expect(await app.cloneToken({ owner: 'Acme', name: 'App' })).toBe('ghs_clone'); // the same repository: no second lookup
    clock += 11 * 60_000; // the lookup is old: asked again
    expect(await app.cloneToken({ owner: 'acme', name: 'app' })).toBe('ghs_clone');

    const other = (await app.cloneToken({ owner: 'other', name: 'app' }).catch((e: unknown) => e)) as WarmstartError;
    expect(other).toMatchObject({
      code: 'GITHUB_APP_AUTH_FAILED',
      message: 'other/app is in installation 77 of the GitHub App, not in 9, the one this agent uses',
    });
    const evil = (await app.cloneToken({ owner: 'evil', name: 'app' }).catch((e: unknown) => e)) as WarmstartError;
    expect(evil).toMatchObject({ code: 'GITHUB_APP_AUTH_FAILED', detail: 'HTTP 404: Not Found' });
    expect(evil.message).toContain('the GitHub App is not installed on evil/app');
    // every interceptor used: three tokens for acme/app, none for the other two
    expect(scope.isDone()).toBe(true);
  });

  it('an installation id that is not a whole number is a configuration error', () => {
    expect(() => githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: '12abc' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('WARMSTART_GITHUB_INSTALLATION_ID') }),
    );
  });

  it("a job's registry token is narrowed to its repository, one token per repository; installation-wide when the API cannot narrow it or when asked", async () => {
    const bodies: { repositories?: string[] }[] = [];
    let n = 0;
    nock(API)
      .post('/app/installations/9/access_tokens', (b: { repositories?: string[] }) => (bodies.push(b), true))
      .times(5)
      .reply(() => {
        const b = bodies[bodies.length - 1]!;
        // GitHub refuses a repository the installation does not cover
        if (b.repositories?.[0] === 'foreign')
          return [422, { message: 'There is at least one repository that does not exist or is not accessible to the parent installation.' }];
        return [201, { token: `ghs_${b.repositories?.[0] ?? 'all'}_${++n}`, expires_at: new Date(Date.now() + HOUR).toISOString() }];
      });
    const app = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9 });
    expect((await app.registry.get('ghcr.io', undefined, { githubRepository: 'app' }))?.password).toBe('ghs_app_1');
    expect((await app.registry.get('ghcr.io', undefined, { githubRepository: 'app' }))?.password).toBe('ghs_app_1'); // cached
    expect((await app.registry.get('ghcr.io', undefined, { githubRepository: 'lib' }))?.password).toBe('ghs_lib_2');
    // not the installation's: the installation-wide token, and the repository is not asked for again
    expect((await app.registry.get('ghcr.io', undefined, { githubRepository: 'foreign' }))?.password).toBe('ghs_all_3');
    expect((await app.registry.get('ghcr.io', undefined, { githubRepository: 'foreign' }))?.password).toBe('ghs_all_3');
    expect((await app.registry.get('ghcr.io'))?.password).toBe('ghs_all_3');
    expect(bodies).toEqual([
      { repositories: ['app'], permissions: { packages: 'write' } },
      { repositories: ['lib'], permissions: { packages: 'write' } },
      { repositories: ['foreign'], permissions: { packages: 'write' } },
      { permissions: { packages: 'write' } },
    ]);

    // With registryScope installation, one token for every repository.
    bodies.length = 0;
    const wide = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9, registryScope: 'installation' });
    expect((await wide.registry.get('ghcr.io', undefined, { githubRepository: 'app' }))?.password).toBe('ghs_all_4');
    expect(bodies).toEqual([{ permissions: { packages: 'write' } }]);
  });

  it('a narrowed token that fails for another reason (401) fails the credentials, without falling back', async () => {
    nock(API).post('/app/installations/9/access_tokens').reply(401, { message: 'A JSON web token could not be decoded' });
    const app = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9 });
    const err = (await app.registry.get('ghcr.io', undefined, { githubRepository: 'app' }).catch((e: unknown) => e)) as WarmstartError;
    expect(err.code).toBe('GITHUB_APP_AUTH_FAILED');
    expect(nock.pendingMocks()).toEqual([]);
  });

  it('a 422 (not granted) says what to grant, for the registry token and for a clone token', async () => {
    const notGranted = {
      message: 'The permissions requested are not granted to this installation.',
      documentation_url: 'https://docs.github.com/rest',
    };
    nock(API).post('/app/installations/9/access_tokens').times(2).reply(422, notGranted);
    const app = githubApp({ appId: APP_ID, privateKey: pkcs1, installationId: 9 });
    const registry = (await app.registry.get('ghcr.io').catch((e: unknown) => e)) as WarmstartError;
    expect(registry.code).toBe('GITHUB_APP_AUTH_FAILED');
    expect(registry.message).toBe(
      'GitHub App installation 9 does not grant packages: write: give the App that permission and accept it in the installation (or install it on that repository)',
    );
    expect(registry.detail).toBe(`HTTP 422: ${notGranted.message}`);
    nock(API).get('/repos/acme/app/installation').reply(200, { id: 9 });
    const clone = (await app.cloneToken({ owner: 'acme', name: 'app' }).catch((e: unknown) => e)) as WarmstartError;
    expect(clone.message).toContain('does not grant contents: read on acme/app');
  });
});

describe('loadPrivateKey', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmstart-key-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads PKCS#1 and PKCS#8 PEM files', async () => {
    await writeFile(join(dir, 'p1.pem'), pkcs1);
    await writeFile(join(dir, 'p8.pem'), pkcs8);
    expect(await loadPrivateKey(join(dir, 'p1.pem'))).toBe(pkcs1);
    expect(await loadPrivateKey(join(dir, 'p8.pem'))).toBe(pkcs8);
  });

  it('says clearly when the file is missing or not a key, without echoing it', async () => {
    await expect(loadPrivateKey(join(dir, 'missing.pem'))).rejects.toMatchObject({
      code: 'GITHUB_APP_AUTH_FAILED',
      detail: 'ENOENT',
    });
    await writeFile(join(dir, 'junk.pem'), 'secret-looking-junk');
    const err = (await loadPrivateKey(join(dir, 'junk.pem')).catch((e: unknown) => e)) as WarmstartError;
    expect(err.code).toBe('GITHUB_APP_AUTH_FAILED');
    expect(err.message).toContain('junk.pem');
    expect(JSON.stringify(toErrorBody(err))).not.toContain('secret-looking-junk');
    // PEM armour around garbage: caught by parsing, content not echoed
    const broken = pkcs1.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
    await writeFile(join(dir, 'broken.pem'), broken);
    const err2 = (await loadPrivateKey(join(dir, 'broken.pem')).catch((e: unknown) => e)) as WarmstartError;
    expect(err2.code).toBe('GITHUB_APP_AUTH_FAILED');
    expect(inspect(err2)).not.toContain(pkcs1.split('\n')[2]!);
  });
});
