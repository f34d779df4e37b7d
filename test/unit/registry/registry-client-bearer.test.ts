import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WarmstartError, toErrorBody } from '../../../agent/src/errors.js';
import type { RegistryCredentials } from '../../../agent/src/registry/credentials.js';
import { createRegistryClient, MANIFEST_ACCEPT } from '../../../agent/src/registry/registry-client.js';

// A fake token-auth registry, shaped like Docker Hub / GHCR / Harbor.
const REG = 'https://registry.example.test';
const AUTH = 'https://auth.example.test';
const PASSWORD = 'sup3r-s3cret-pa55word';
const creds: RegistryCredentials = { registry: 'registry.example.test', username: 'ci', password: PASSWORD, source: 'job' };
const challenge = (scope?: string): Record<string, string> => ({
  'www-authenticate': `Bearer realm="${AUTH}/token",service="registry.example.test"${scope ? `,scope="${scope}"` : ''}`,
});
const UNAUTHORIZED = { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] };

/** Awaits a rejection and returns the error. */
async function rejection(p: Promise<unknown>): Promise<WarmstartError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WarmstartError);
  return err as WarmstartError;
}

/** Asserts no secret appears anywhere an error is shown or logged. */
function expectNoSecret(err: WarmstartError, ...secrets: string[]): void {
  const basic = Buffer.from(`ci:${PASSWORD}`).toString('base64');
  for (const text of [err.message, err.detail ?? '', JSON.stringify(err), JSON.stringify(toErrorBody(err)), inspect(err, { depth: 10 })]) {
    for (const s of [PASSWORD, basic, ...secrets]) expect(text).not.toContain(s);
  }
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

const client = createRegistryClient();

describe('registry client, Bearer token auth', () => {
  it('checkAuth: answers the challenge with a token fetched using Basic creds', async () => {
    const reg = nock(REG)
      .get('/v2/')
      .reply(401, UNAUTHORIZED, challenge())
      .get('/v2/')
      .matchHeader('authorization', 'Bearer tok-login')
      .reply(200, {});
    const auth = nock(AUTH)
      .get('/token')
      .query({ service: 'registry.example.test' })
      .basicAuth({ user: 'ci', pass: PASSWORD })
      .reply(200, { token: 'tok-login' });
    await client.checkAuth('registry.example.test', creds);
    expect(reg.isDone() && auth.isDone()).toBe(true);
  });

  it('probePush: asks for pull,push scope, accepts access_token, then cancels the upload', async () => {
    const reg = nock(REG)
      .post('/v2/team/app/blobs/uploads/')
      .reply(401, UNAUTHORIZED, challenge('repository:team/app:pull,push'))
      .post('/v2/team/app/blobs/uploads/')
      .matchHeader('authorization', 'Bearer tok-push')
      .reply(202, '', { location: '/v2/team/app/blobs/uploads/u-1?_state=abc' })
      .delete('/v2/team/app/blobs/uploads/u-1')
      .query({ _state: 'abc' })
      .matchHeader('authorization', 'Bearer tok-push')
      .reply(204);
    const auth = nock(AUTH)
      .get('/token')
      .query({ service: 'registry.example.test', scope: 'repository:team/app:pull,push' })
      .basicAuth({ user: 'ci', pass: PASSWORD })
      .reply(200, { access_token: 'tok-push' });
    await client.probePush('registry.example.test/team/app', creds);
    expect(reg.isDone() && auth.isDone()).toBe(true);
  });

  it('headManifest: pull scope, the manifest Accept list, digest from the header', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const reg = nock(REG)
      .head('/v2/team/app/manifests/devcontainer-cache')
      .reply(401, undefined, challenge('repository:team/app:pull'))
      .head('/v2/team/app/manifests/devcontainer-cache')
      .matchHeader('authorization', 'Bearer tok-pull')
      .matchHeader('accept', MANIFEST_ACCEPT)
      .reply(200, undefined, { 'docker-content-digest': digest })
      .head('/v2/team/app/manifests/gone')
      .reply(401, undefined, challenge('repository:team/app:pull'))
      .head('/v2/team/app/manifests/gone')
      .matchHeader('authorization', 'Bearer tok-pull')
      .reply(404);
    const auth = nock(AUTH)
      .get('/token')
      .times(2)
      .query({ service: 'registry.example.test', scope: 'repository:team/app:pull' })
      .reply(200, { token: 'tok-pull' });
    expect(await client.headManifest('registry.example.test/team/app', 'devcontainer-cache', creds)).toBe(digest);
    expect(await client.headManifest('registry.example.test/team/app', 'gone', creds)).toBeNull();
    expect(reg.isDone() && auth.isDone()).toBe(true);
  });

  it('a 401 from the token endpoint is REGISTRY_AUTH_FAILED, without the password', async () => {
    nock(REG).post('/v2/team/app/blobs/uploads/').reply(401, UNAUTHORIZED, challenge());
    // A careless token server echoing what it got must not leak it either.
    nock(AUTH)
      .get('/token')
      .query(true)
      .reply(401, { details: `incorrect username or password: ci:${PASSWORD}` });
    const err = await rejection(client.probePush('registry.example.test/team/app', creds));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
    expect(err.detail).toContain('401');
    expectNoSecret(err);
  });

  it('a 403 on the upload POST is REGISTRY_PUSH_DENIED with the status', async () => {
    nock(REG)
      .post('/v2/team/app/blobs/uploads/')
      .reply(401, UNAUTHORIZED, challenge())
      .post('/v2/team/app/blobs/uploads/')
      .matchHeader('authorization', 'Bearer tok-ro')
      .reply(403, { errors: [{ code: 'DENIED', message: 'permission_denied: write_package' }] });
    nock(AUTH).get('/token').query(true).reply(200, { token: 'tok-ro' });
    const err = await rejection(client.probePush('registry.example.test/team/app', creds));
    expect(err.code).toBe('REGISTRY_PUSH_DENIED');
    expect(err.detail).toBe('HTTP 403: DENIED: permission_denied: write_package');
    expectNoSecret(err, 'tok-ro');
  });

  it('a 401 on the POST after a token (token without push scope) is REGISTRY_PUSH_DENIED', async () => {
    nock(REG)
      .post('/v2/team/app/blobs/uploads/')
      .reply(401, UNAUTHORIZED, challenge())
      .post('/v2/team/app/blobs/uploads/')
      .reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'insufficient_scope' }] }, challenge());
    nock(AUTH).get('/token').query(true).reply(200, { token: 'tok-pull-only' });
    const err = await rejection(client.probePush('registry.example.test/team/app', creds));
    expect(err.code).toBe('REGISTRY_PUSH_DENIED');
    expect(err.detail).toContain('401');
  });

  it('anonymous: gets a token without credentials; a refused push says none are configured', async () => {
    nock(REG)
      .post('/v2/team/app/blobs/uploads/')
      .reply(401, UNAUTHORIZED, challenge())
      .post('/v2/team/app/blobs/uploads/')
      .matchHeader('authorization', 'Bearer anon')
      .reply(401, UNAUTHORIZED, challenge());
    nock(AUTH)
      .get('/token')
      .query(true)
      .matchHeader('authorization', (v: string | undefined) => v === undefined)
      .reply(200, { token: 'anon' });
    const err = await rejection(client.probePush('registry.example.test/team/app', null));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
    expect(err.message).toMatch(/none are configured/);
  });

  it('does not send credentials to a plain-http token realm', async () => {
    nock(REG)
      .get('/v2/')
      .reply(401, UNAUTHORIZED, { 'www-authenticate': 'Bearer realm="http://auth.example.test/token",service="s"' })
      .get('/v2/')
      .reply(200, {});
    nock('http://auth.example.test')
      .get('/token')
      .query(true)
      .matchHeader('authorization', (v: string | undefined) => v === undefined)
      .reply(200, { token: 't' });
    await client.checkAuth('registry.example.test', creds);
  });

  it('an unanswered registry is REGISTRY_UNREACHABLE after the timeout', async () => {
    nock(REG).get('/v2/').delay(2_000).reply(200, {});
    const err = await rejection(createRegistryClient({ timeoutMs: 100 }).checkAuth('registry.example.test', creds));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.detail).toMatch(/100 ms/);
  });

  it('a caller abort is passed through as is', async () => {
    nock(REG).get('/v2/').delay(2_000).reply(200, {});
    const ac = new AbortController();
    const p = client.checkAuth('registry.example.test', creds, ac.signal);
    setTimeout(() => ac.abort(new Error('job cancelled')), 20);
    await expect(p).rejects.toThrow('job cancelled');
  });

  it('hashes the manifest when HEAD carries no digest header', async () => {
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    const expected = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    const reg = nock(REG)
      .head('/v2/team/app/manifests/t')
      .reply(200)
      .get('/v2/team/app/manifests/t')
      .reply(200, manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    expect(await client.headManifest('registry.example.test/team/app', 't', null)).toBe(expected);
    expect(reg.isDone()).toBe(true);
  });

  it('rejects malformed repositories and references before any request', async () => {
    await expect(client.probePush('registry.example.test', creds)).rejects.toMatchObject({ code: 'INVALID_CACHE_REF' });
    await expect(client.probePush('registry.example.test/Upper/Case', creds)).rejects.toMatchObject({ code: 'INVALID_CACHE_REF' });
    await expect(client.headManifest('registry.example.test/a', '../x', creds)).rejects.toMatchObject({ code: 'INVALID_CACHE_REF' });
    await expect(client.checkAuth('https://registry.example.test', creds)).rejects.toMatchObject({ code: 'INVALID_REGISTRY' });
  });
});
