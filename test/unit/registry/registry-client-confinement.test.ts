import { afterEach, describe, expect, it } from 'vitest';
import type { RegistryCredentials } from '../../../agent/src/registry/credentials.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { startStandin, type RecordedRequest, type Standin } from '../../support/standin.js';

// Real HTTP on loopback (plain http: the client treats 127.* as Docker does):
// one stand-in plays the registry, another the host its answers point at.
const PASSWORD = 'confined-pa55word-7f3a';
const servers: Standin[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function standin(handler?: Parameters<typeof startStandin>[0]): Promise<Standin> {
  const s = await startStandin(handler);
  servers.push(s);
  return s;
}

/** A Basic-auth registry: 401 without Authorization, else `answer`. */
function registry(answer: (req: RecordedRequest, res: import('node:http').ServerResponse) => void) {
  return (req: RecordedRequest, res: import('node:http').ServerResponse): void => {
    if (!req.headers.authorization) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
      return;
    }
    answer(req, res);
  };
}

const credsFor = (host: string): RegistryCredentials => ({ registry: host, username: 'node', password: PASSWORD, source: 'static' });
const authHeaders = (s: Standin): unknown[] => s.requests.map((r) => r.headers.authorization).filter((a) => a !== undefined);

describe('registry client: Authorization stays with its registry', () => {
  it('does not take the credentials to an upload Location on another host', async () => {
    const other = await standin();
    const reg = await standin(
      registry((req, res) => {
        res.writeHead(202, { location: `${other.url}/v2/acme/app/blobs/uploads/u1` }).end();
      }),
    );
    await createRegistryClient().probePush(`${reg.host}/acme/app`, credsFor(reg.host));
    // The registry got the credentials (so the probe really authenticated)...
    expect(reg.saw(PASSWORD)).toBe(true);
    // ...the other host got nothing: no DELETE, no Authorization, no password.
    expect(other.requests).toHaveLength(0);
    expect(other.saw(PASSWORD)).toBe(false);
  });

  it('still cancels an upload on the registry itself, with the credentials', async () => {
    const reg = await standin(
      registry((req, res) => {
        if (req.method === 'POST') res.writeHead(202, { location: '/v2/acme/app/blobs/uploads/u2' }).end();
        else res.writeHead(204).end();
      }),
    );
    await createRegistryClient().probePush(`${reg.host}/acme/app`, credsFor(reg.host));
    const del = reg.requests.find((r) => r.method === 'DELETE');
    expect(del?.url).toBe('/v2/acme/app/blobs/uploads/u2');
    expect(del?.headers.authorization).toMatch(/^Basic /);
  });

  it('follows a redirect to another host without Authorization, and one on the same host with it', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const other = await standin((_req, res) => {
      res.writeHead(200, { 'docker-content-digest': digest }).end();
    });
    const reg = await standin(
      registry((req, res) => {
        if (req.url.endsWith('/manifests/away')) res.writeHead(307, { location: `${other.url}/v2/acme/app/manifests/away` }).end();
        else if (req.url.endsWith('/manifests/here')) res.writeHead(308, { location: '/v2/acme/app/manifests/final' }).end();
        else res.writeHead(200, { 'docker-content-digest': digest }).end();
      }),
    );
    const client = createRegistryClient();
    expect(await client.headManifest(`${reg.host}/acme/app`, 'away', credsFor(reg.host))).toBe(digest);
    expect(other.requests.map((r) => r.method)).toEqual(['HEAD']);
    expect(authHeaders(other)).toEqual([]);
    expect(other.saw(PASSWORD)).toBe(false);

    expect(await client.headManifest(`${reg.host}/acme/app`, 'here', credsFor(reg.host))).toBe(digest);
    const final = reg.requests.find((r) => r.url.endsWith('/manifests/final'));
    expect(final?.headers.authorization).toMatch(/^Basic /);
  });

  it('drops Authorization for the rest of a chain that left the host, even when it comes back', async () => {
    // reg is read only when the other host answers, after both are up.
    const other = await standin((_req, res) => {
      res.writeHead(302, { location: `${reg.url}/v2/acme/app/manifests/back` }).end();
    });
    const reg = await standin(
      registry((req, res) => {
        if (req.url.endsWith('/manifests/out')) res.writeHead(302, { location: `${other.url}/bounce` }).end();
        else res.writeHead(200, { 'docker-content-digest': `sha256:${'b'.repeat(64)}` }).end();
      }),
    );
    // The hop back arrives without Authorization, so the registry answers 401: a refusal, not a leak.
    await expect(createRegistryClient().headManifest(`${reg.host}/acme/app`, 'out', credsFor(reg.host))).rejects.toMatchObject({
      code: 'REGISTRY_AUTH_FAILED',
    });
    expect(other.saw(PASSWORD)).toBe(false);
    expect(authHeaders(other)).toEqual([]);
    expect(reg.requests.filter((r) => r.url.endsWith('/back')).every((r) => r.headers.authorization === undefined)).toBe(true);
  });

  it('does not answer a challenge from another host with the credentials', async () => {
    const other = await standin((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="phish"' }).end();
    });
    const reg = await standin(
      registry((_req, res) => {
        res.writeHead(307, { location: `${other.url}/v2/acme/app/manifests/x` }).end();
      }),
    );
    await expect(createRegistryClient().headManifest(`${reg.host}/acme/app`, 'x', credsFor(reg.host))).rejects.toMatchObject({
      code: 'REGISTRY_AUTH_FAILED',
    });
    expect(other.requests.length).toBeGreaterThan(0);
    expect(other.saw(PASSWORD)).toBe(false);
  });

  it('does not fetch a token from a realm that a redirected-to host names', async () => {
    const other: Standin = await standin((req, res) => {
      if (req.url.startsWith('/token')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="${other.url}/token",service="x"` }).end();
    });
    // Redirected before any challenge of its own: the other host's challenge comes first.
    const reg = await standin((_req, res) => {
      res.writeHead(302, { location: `${other.url}/v2/acme/app/manifests/x` }).end();
    });
    await expect(createRegistryClient().headManifest(`${reg.host}/acme/app`, 'x', credsFor(reg.host))).rejects.toMatchObject({
      code: 'REGISTRY_AUTH_FAILED',
    });
    expect(other.requests.length).toBeGreaterThan(0);
    expect(other.requests.some((r) => r.url.startsWith('/token'))).toBe(false);
    expect(other.saw(PASSWORD)).toBe(false);
  });
});
