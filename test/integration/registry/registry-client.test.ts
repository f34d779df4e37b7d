import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WarmstartError } from '../../../agent/src/errors.js';
import type { RegistryCredentials } from '../../../agent/src/registry/credentials.js';
import { createDockerConfig } from '../../../agent/src/registry/docker-config.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { loadTestbed } from '../../support/testbed.js';

// Against the real registries of test/testbed/up.sh (distribution 2.8 with
// htpasswd auth, its read-only twin over the same storage, an open one).
const tb = loadTestbed();
const exec = promisify(execFile);
const client = createRegistryClient();
const creds: RegistryCredentials = {
  registry: tb.registry,
  username: tb.registryUser,
  password: tb.registryPassword,
  source: 'static',
};
const wrong: RegistryCredentials = { ...creds, password: `${tb.registryPassword}-wrong` };
const REPO = 'warmstart-test-registry-client/x';
const PROBE_REPO = 'warmstart-test-registry-client/probe';

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

/** A port that was just free: listen on an ephemeral port, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** GET on the registry API with our creds, for checks outside the client. */
async function api(path: string): Promise<Response> {
  const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  return fetch(`http://${tb.registry}${path}`, { headers: { authorization: `Basic ${auth}` } });
}

describe('checkAuth', () => {
  it('accepts the right credentials', async () => {
    await expect(client.checkAuth(tb.registry, creds)).resolves.toBeUndefined();
  });

  it('REGISTRY_AUTH_FAILED with a wrong password, which it does not echo', async () => {
    const err = await rejection(client.checkAuth(tb.registry, wrong));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
    expect(err.detail).toBe('HTTP 401: UNAUTHORIZED: authentication required');
    expect(JSON.stringify({ m: err.message, d: err.detail })).not.toContain(wrong.password);
  });

  it('REGISTRY_AUTH_FAILED without credentials', async () => {
    const err = await rejection(client.checkAuth(tb.registry, null));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
    expect(err.message).toMatch(/none are configured/);
  });

  it('an open registry needs none', async () => {
    await expect(client.checkAuth(tb.openRegistry, null)).resolves.toBeUndefined();
  });

  it('REGISTRY_UNREACHABLE for 127.0.0.1:1, which fetch refuses outright (a WHATWG "bad port")', async () => {
    const err = await rejection(client.checkAuth('127.0.0.1:1', creds));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.detail).toMatch(/bad port/);
  });

  it('REGISTRY_UNREACHABLE for a closed ordinary port, with the cause', async () => {
    const err = await rejection(client.checkAuth(`127.0.0.1:${await closedPort()}`, creds));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.detail).toMatch(/ECONNREFUSED/);
  });
});

describe('probePush', () => {
  it('passes on the writable registry, twice, and the cancelled upload creates no repository', async () => {
    await client.probePush(`${tb.registry}/${PROBE_REPO}`, creds);
    await client.probePush(`${tb.registry}/${PROBE_REPO}`, creds);
    // distribution 2.8 keeps an empty _uploads/<uuid> directory on disk
    // after the DELETE, but the repository is not visible through the API.
    const tags = await api(`/v2/${PROBE_REPO}/tags/list`);
    expect(tags.status).toBe(404);
    expect(((await tags.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('NAME_UNKNOWN');
    const catalog = (await (await api('/v2/_catalog?n=1000')).json()) as { repositories: string[] };
    expect(catalog.repositories).not.toContain(PROBE_REPO);
  });

  it('passes on the open registry without credentials', async () => {
    await client.probePush(`${tb.openRegistry}/${PROBE_REPO}`, null);
  });

  it('REGISTRY_PUSH_DENIED on the read-only registry (405)', async () => {
    const err = await rejection(client.probePush(`${tb.readonlyRegistry}/${PROBE_REPO}`, { ...creds, registry: tb.readonlyRegistry }));
    expect(err.code).toBe('REGISTRY_PUSH_DENIED');
    expect(err.detail).toMatch(/^HTTP 405/);
  });

  it('REGISTRY_AUTH_FAILED on the read-only registry without credentials (auth comes before read-only)', async () => {
    const err = await rejection(client.probePush(`${tb.readonlyRegistry}/${PROBE_REPO}`, null));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
  });

  it('REGISTRY_AUTH_FAILED with a wrong password', async () => {
    const err = await rejection(client.probePush(`${tb.registry}/${PROBE_REPO}`, wrong));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
    expect(err.detail).toMatch(/^HTTP 401/);
  });

  it('REGISTRY_UNREACHABLE for a closed port', async () => {
    const err = await rejection(client.probePush(`127.0.0.1:1/${PROBE_REPO}`, creds));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
  });
});

describe('headManifest', () => {
  const ref = `${tb.registry}/${REPO}:t`;
  let work: string;

  beforeAll(async () => {
    // Push a tiny image with a throwaway DOCKER_CONFIG, never ~/.docker.
    work = await mkdtemp(join(tmpdir(), 'warmstart-regclient-'));
    const cfg = await createDockerConfig(work, creds);
    try {
      await exec('docker', ['tag', tb.baseImage, ref]);
      await exec('docker', ['push', ref], { env: { ...process.env, DOCKER_CONFIG: cfg.dir } });
    } finally {
      await cfg.dispose();
      await exec('docker', ['rmi', ref]).catch(() => {});
    }
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('returns the sha256 digest of a pushed tag, on both views of the storage', async () => {
    const digest = await client.headManifest(`${tb.registry}/${REPO}`, 't', creds);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const ro = await client.headManifest(`${tb.readonlyRegistry}/${REPO}`, 't', { ...creds, registry: tb.readonlyRegistry });
    expect(ro).toBe(digest);
    // by digest as well
    expect(await client.headManifest(`${tb.registry}/${REPO}`, digest!, creds)).toBe(digest);
  });

  it('returns null for a missing tag and a missing repository', async () => {
    expect(await client.headManifest(`${tb.registry}/${REPO}`, 'no-such-tag', creds)).toBeNull();
    expect(await client.headManifest(`${tb.registry}/warmstart-test-registry-client/none`, 't', creds)).toBeNull();
  });

  it('REGISTRY_AUTH_FAILED without credentials', async () => {
    const err = await rejection(client.headManifest(`${tb.registry}/${REPO}`, 't', null));
    expect(err.code).toBe('REGISTRY_AUTH_FAILED');
  });
});
