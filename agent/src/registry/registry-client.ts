/**
 * A small OCI distribution client over fetch: just enough to tell, before a
 * build, whether the registry answers, accepts our credentials, would accept
 * a push, and holds a given tag. Image transfer itself is Docker's job.
 */
import { createHash } from 'node:crypto';
import { WarmstartError } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';
import { bodySummary, drain, Session, type Env } from './registry-session.js';
import { RegistryTransports } from './registry-transports.js';

/** Read-only and probing calls against one registry. */
export interface RegistryClient {
  /** GET /v2/ with auth; resolves when the registry accepts us, else throws REGISTRY_UNREACHABLE / REGISTRY_AUTH_FAILED / REGISTRY_ERROR */
  checkAuth(registryHost: string, creds: RegistryCredentials | null, signal?: AbortSignal): Promise<void>;
  /**
   * Starts a blob upload (POST /v2/<repo>/blobs/uploads/) then cancels it
   * (DELETE the Location): resolves if a push would be allowed; throws
   * REGISTRY_PUSH_DENIED (401/403/405 on the POST, status in detail),
   * REGISTRY_AUTH_FAILED, REGISTRY_UNREACHABLE, REGISTRY_ERROR.
   */
  probePush(repository: string, creds: RegistryCredentials | null, signal?: AbortSignal): Promise<void>;
  /** HEADs the manifest of repository:reference (OCI index/manifest, docker v2 manifest/list); its digest, or null on 404 */
  headManifest(repository: string, reference: string, creds: RegistryCredentials | null, signal?: AbortSignal): Promise<string | null>;
}

/** Options of {@link createRegistryClient}. */
export interface RegistryClientOptions {
  /**
   * How each registry is reached (scheme, TLS), shared by the agent's
   * clients (agent.ts); default: dockerd's defaults without asking an
   * engine, certificates from /etc/docker/certs.d.
   */
  transports?: RegistryTransports;
  /** plain requests, when `transports` is not given (tests) */
  fetch?: typeof fetch;
  /** per HTTP request; default 15000 */
  timeoutMs?: number;
}

/** The Env of a client's sessions. */
export function sessionEnv(opts: RegistryClientOptions): Env {
  return {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    transports: opts.transports ?? new RegistryTransports(opts.fetch ? { fetch: opts.fetch } : {}),
  };
}

/** Media types we accept for a manifest, as `docker pull` does. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const DEFAULT_TIMEOUT_MS = 15_000;

/** Creates a client; between calls it keeps only what its transports keep (the routes, for 30 s). */
export function createRegistryClient(opts: RegistryClientOptions = {}): RegistryClient {
  const env = sessionEnv(opts);

  return {
    async checkAuth(registryHost, creds, signal) {
      const s = new Session(env, parseHost(registryHost), creds, undefined, signal);
      const res = await s.send('GET', '/v2/');
      const text = await bodySummary(res);
      if (res.ok) return;
      if (res.status === 401 || res.status === 403) throw s.authFailed(res, text);
      throw s.error('REGISTRY_ERROR', `registry ${s.host} answered /v2/ with HTTP ${res.status}`, res, text);
    },

    async probePush(repository, creds, signal) {
      const { host, path } = parseRepository(repository);
      const s = new Session(env, host, creds, `repository:${path}:pull,push`, signal);
      const res = await s.send('POST', `/v2/${path}/blobs/uploads/`);
      const text = await bodySummary(res);
      if (res.ok) {
        await s.cancelUpload(res);
        return;
      }
      // 401 after authenticating means the credentials themselves were
      // refused, except with token auth, where the token server hands out a
      // token without push scope and the registry then says 401.
      const credentialsRefused = res.status === 401 && (creds === null || s.scheme !== 'bearer');
      if (credentialsRefused) throw s.authFailed(res, text);
      if (res.status === 401 || res.status === 403 || res.status === 405) {
        throw s.error('REGISTRY_PUSH_DENIED', `registry ${s.host} would refuse a push to ${path}`, res, text);
      }
      throw s.error('REGISTRY_ERROR', `registry ${s.host} answered the upload probe with HTTP ${res.status}`, res, text);
    },

    async headManifest(repository, reference, creds, signal) {
      const { host, path } = parseRepository(repository);
      if (!REFERENCE.test(reference)) {
        throw new WarmstartError('INVALID_CACHE_REF', `not a tag or digest: ${JSON.stringify(reference)}`);
      }
      const s = new Session(env, host, creds, `repository:${path}:pull`, signal);
      const url = `/v2/${path}/manifests/${reference}`;
      const res = await s.send('HEAD', url, { accept: MANIFEST_ACCEPT });
      await drain(res);
      if (res.status === 404) return null;
      if (res.ok) {
        const digest = res.headers.get('docker-content-digest');
        if (digest) return digest;
        // Some registries omit the header on HEAD: hash the manifest instead.
        const get = await s.send('GET', url, { accept: MANIFEST_ACCEPT });
        if (get.ok)
          return `sha256:${createHash('sha256')
            .update(Buffer.from(await get.arrayBuffer()))
            .digest('hex')}`;
        await drain(get);
        throw s.error('REGISTRY_ERROR', `registry ${s.host} gave no digest for ${path}:${reference}`, get, '');
      }
      if (res.status === 401 || res.status === 403) throw s.authFailed(res, '');
      throw s.error('REGISTRY_ERROR', `registry ${s.host} answered HEAD ${path}:${reference} with HTTP ${res.status}`, res, '');
    },
  };
}

/** `host[:port]/path` split and checked against the OCI name rules. */
export function parseRepository(repository: string): { host: string; path: string } {
  const slash = repository.indexOf('/');
  const host = slash > 0 ? repository.slice(0, slash) : '';
  const path = slash > 0 ? repository.slice(slash + 1) : '';
  if (!HOST.test(host) || !REPO_PATH.test(path)) {
    throw new WarmstartError('INVALID_CACHE_REF', `not a registry repository (host[:port]/path): ${JSON.stringify(repository)}`);
  }
  return { host: host.toLowerCase(), path };
}

function parseHost(registryHost: string): string {
  if (!HOST.test(registryHost)) {
    throw new WarmstartError('INVALID_REGISTRY', `not a registry host[:port]: ${JSON.stringify(registryHost)}`);
  }
  return registryHost.toLowerCase();
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const REPO_PATH = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
export const REFERENCE = /^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})$/;
