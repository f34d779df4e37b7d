/**
 * The OCI distribution calls that read and write a registry's contents:
 * manifests and blobs by digest, tag lists, the catalog, manifest deletion.
 * Signatures (agent/src/cache/signature-store.ts) and retention
 * (agent/src/cache/prune-run.ts) use them; image transfer stays Docker's.
 */
import { createHash } from 'node:crypto';
import { WarmstartError } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';
import { MANIFEST_ACCEPT, parseRepository, REFERENCE, sessionEnv, type RegistryClientOptions } from './registry-client.js';
import { bodySummary, drain, Session } from './registry-session.js';

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface OciApi {
  /** The manifest under a tag or digest, or null on 404. */
  getManifest(repository: string, reference: string, creds: RegistryCredentials | null, accept?: string): Promise<FetchedManifest | null>;
  /** A blob's bytes (at most `maxBytes`), checked against its digest; null on 404. */
  getBlob(repository: string, digest: string, creds: RegistryCredentials | null, maxBytes: number): Promise<Buffer | null>;
  /** Uploads a blob in one request (POST then PUT); its digest. */
  putBlob(repository: string, bytes: Buffer, creds: RegistryCredentials | null): Promise<string>;
  /** Puts a manifest under a tag; its digest. */
  putManifest(repository: string, tag: string, bytes: Buffer, mediaType: string, creds: RegistryCredentials | null): Promise<string>;
  /** Every tag of a repository (following `Link` pages); empty when the repository is unknown. */
  listTags(repository: string, creds: RegistryCredentials | null): Promise<string[]>;
  /** Every repository path on a registry host (`/v2/_catalog`, paged). */
  catalog(registryHost: string, creds: RegistryCredentials | null): Promise<string[]>;
  /** DELETE of a manifest by digest: every tag pointing at it goes too. False when it was already gone. */
  deleteManifest(repository: string, digest: string, creds: RegistryCredentials | null): Promise<boolean>;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const PAGE = 1000;
const MAX_PAGES = 1000;

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** `pageSize`: entries asked for per catalog or tag-list page (distribution's limit is 1000). */
export function createOciApi(opts: RegistryClientOptions & { pageSize?: number } = {}): OciApi {
  const page = opts.pageSize ?? PAGE;
  const env = sessionEnv(opts);
  const session = (repository: string, creds: RegistryCredentials | null, actions: string) => {
    const { host, path } = parseRepository(repository);
    return { s: new Session(env, host, creds, `repository:${path}:${actions}`, undefined), path };
  };
  const fail = async (s: Session, what: string, res: Response): Promise<never> => {
    const text = await bodySummary(res);
    if (res.status === 401 || res.status === 403) throw s.authFailed(res, text);
    throw s.error('REGISTRY_ERROR', `registry ${s.host}: ${what} answered HTTP ${res.status}`, res, text);
  };
  /** Pages through a list endpoint by its `Link: <...>; rel="next"` header. */
  const paged = async (s: Session, first: string, pick: (body: unknown) => string[], what: string): Promise<string[]> => {
    const out: string[] = [];
    let next: string | null = first;
    for (let page = 0; next !== null && page < MAX_PAGES; page++) {
      const res = await s.send('GET', next, { accept: 'application/json' });
      if (res.status === 404) {
        await drain(res);
        return out;
      }
      if (!res.ok) await fail(s, what, res);
      out.push(...pick(await res.json().catch(() => null))); // a page that is not JSON has no entries
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '');
      next = link ? link[1]! : null;
    }
    return out;
  };
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

  return {
    async getManifest(repository, reference, creds, accept = MANIFEST_ACCEPT) {
      if (!REFERENCE.test(reference)) throw new WarmstartError('INVALID_CACHE_REF', `not a tag or digest: ${JSON.stringify(reference)}`);
      const { s, path } = session(repository, creds, 'pull');
      const res = await s.send('GET', `/v2/${path}/manifests/${reference}`, { accept });
      if (res.status === 404) {
        await drain(res);
        return null;
      }
      if (!res.ok) return fail(s, `GET manifest ${path}:${reference}`, res);
      const bytes = Buffer.from(await res.arrayBuffer());
      const digest = sha256Digest(bytes);
      // A registry may not rewrite what a digest names.
      if (reference.startsWith('sha256:') && reference !== digest) {
        throw new WarmstartError('REGISTRY_ERROR', `registry ${s.host} returned other bytes for ${path}@${reference}`);
      }
      return { digest, mediaType: res.headers.get('content-type') ?? '', bytes };
    },

    async getBlob(repository, digest, creds, maxBytes) {
      if (!DIGEST.test(digest)) throw new WarmstartError('REGISTRY_ERROR', `not a sha256 digest: ${JSON.stringify(digest.slice(0, 80))}`);
      const { s, path } = session(repository, creds, 'pull');
      // The registry may redirect to storage elsewhere; Session drops our Authorization there.
      const res = await s.send('GET', `/v2/${path}/blobs/${digest}`);
      if (res.status === 404) {
        await drain(res);
        return null;
      }
      if (!res.ok) return fail(s, `GET blob ${path}@${digest}`, res);
      if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
        await drain(res);
        throw new WarmstartError('REGISTRY_ERROR', `blob ${path}@${digest} is larger than ${maxBytes} bytes`);
      }
      const bytes = Buffer.from(await res.arrayBuffer());
      if (bytes.length > maxBytes || sha256Digest(bytes) !== digest) {
        throw new WarmstartError('REGISTRY_ERROR', `blob ${path}@${digest} does not match its digest or is too large`);
      }
      return bytes;
    },

    async putBlob(repository, bytes, creds) {
      const { s, path } = session(repository, creds, 'pull,push');
      const digest = sha256Digest(bytes);
      const start = await s.send('POST', `/v2/${path}/blobs/uploads/`);
      if (start.status !== 202) return fail(s, `POST blob upload ${path}`, start);
      await drain(start);
      const location = start.headers.get('location');
      if (!location) throw new WarmstartError('REGISTRY_ERROR', `registry ${s.host} started an upload without a Location`);
      const url = new URL(location, start.url || s.base);
      url.searchParams.set('digest', digest);
      const put = await s.send('PUT', url.toString(), { 'content-type': 'application/octet-stream' }, bytes);
      if (put.status !== 201) return fail(s, `PUT blob ${path}@${digest}`, put);
      await drain(put);
      return digest;
    },

    async putManifest(repository, tag, bytes, mediaType, creds) {
      const { s, path } = session(repository, creds, 'pull,push');
      const res = await s.send('PUT', `/v2/${path}/manifests/${tag}`, { 'content-type': mediaType }, bytes);
      if (res.status !== 201) return fail(s, `PUT manifest ${path}:${tag}`, res);
      await drain(res);
      return res.headers.get('docker-content-digest') ?? sha256Digest(bytes);
    },

    async listTags(repository, creds) {
      const { s, path } = session(repository, creds, 'pull');
      return paged(s, `/v2/${path}/tags/list?n=${page}`, (b) => strings((b as { tags?: unknown } | null)?.tags), `tags of ${path}`);
    },

    async catalog(registryHost, creds) {
      const s = new Session(env, registryHost.toLowerCase(), creds, 'registry:catalog:*', undefined);
      return paged(s, `/v2/_catalog?n=${page}`, (b) => strings((b as { repositories?: unknown } | null)?.repositories), 'the catalog');
    },

    async deleteManifest(repository, digest, creds) {
      if (!DIGEST.test(digest)) throw new WarmstartError('REGISTRY_ERROR', `not a sha256 digest: ${JSON.stringify(digest.slice(0, 80))}`);
      const { s, path } = session(repository, creds, 'pull,push,delete');
      const res = await s.send('DELETE', `/v2/${path}/manifests/${digest}`);
      if (res.status === 404) {
        await drain(res);
        return false;
      }
      if (res.status === 202 || res.ok) {
        await drain(res);
        return true;
      }
      if (res.status === 405) {
        const text = await bodySummary(res);
        throw s.error('REGISTRY_ERROR', `registry ${s.host} does not allow deleting manifests (distribution: storage.delete.enabled)`, res, text);
      }
      return fail(s, `DELETE manifest ${path}@${digest}`, res);
    },
  };
}
