/**
 * A small OCI distribution client over fetch: just enough to tell, before a
 * build, whether the registry answers, accepts our credentials, would accept
 * a push, and holds a given tag. Image transfer itself is Docker's job.
 */
import { createHash } from 'node:crypto';
import { WarmstartError, type ErrorCode } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';

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
  headManifest(
    repository: string,
    reference: string,
    creds: RegistryCredentials | null,
    signal?: AbortSignal,
  ): Promise<string | null>;
}

/** Options of {@link createRegistryClient}. */
export interface RegistryClientOptions {
  fetch?: typeof fetch;
  /** per HTTP request; default 15000 */
  timeoutMs?: number;
  /** hosts (host[:port]) to talk plain http to, beyond localhost / 127.* / [::1] */
  insecureHosts?: (host: string) => boolean;
}

/** Media types we accept for a manifest, as `docker pull` does. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const DEFAULT_TIMEOUT_MS = 15_000;

/** Creates a client; it caches nothing between calls. */
export function createRegistryClient(opts: RegistryClientOptions = {}): RegistryClient {
  const env: Env = {
    fetch: opts.fetch ?? fetch,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    insecure: opts.insecureHosts ?? (() => false),
  };

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
        if (get.ok) return `sha256:${createHash('sha256').update(Buffer.from(await get.arrayBuffer())).digest('hex')}`;
        await drain(get);
        throw s.error('REGISTRY_ERROR', `registry ${s.host} gave no digest for ${path}:${reference}`, get, '');
      }
      if (res.status === 401 || res.status === 403) throw s.authFailed(res, '');
      throw s.error('REGISTRY_ERROR', `registry ${s.host} answered HEAD ${path}:${reference} with HTTP ${res.status}`, res, '');
    },
  };
}

interface Env {
  fetch: typeof fetch;
  timeoutMs: number;
  insecure: (host: string) => boolean;
}

/**
 * One operation's conversation with a registry: the first request goes out
 * anonymously, a 401 challenge is answered once (Basic, or a Bearer token
 * from the realm), and later requests of the same operation reuse that.
 */
class Session {
  readonly base: string;
  scheme: 'none' | 'basic' | 'bearer' = 'none';
  private authorization: string | undefined;
  private challenged = false;
  /** where the last response came from, after any redirects */
  private answeredBy: URL;
  private readonly secrets: string[];

  constructor(
    private readonly env: Env,
    readonly host: string,
    private readonly creds: RegistryCredentials | null,
    private readonly scope: string | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.base = `${isInsecure(host, env.insecure) ? 'http' : 'https'}://${apiHost(host)}`;
    this.secrets = creds ? [creds.password] : [];
    this.answeredBy = new URL(this.base);
  }

  /**
   * Sends a request, answering one auth challenge on the way. Authorization
   * goes only to the registry itself: a URL on another origin (a Location the
   * registry named) gets the request without it, and its challenge is not
   * answered.
   */
  async send(method: string, pathOrUrl: string, headers: Record<string, string> = {}): Promise<Response> {
    const target = new URL(pathOrUrl, this.base);
    const url = target.toString();
    const ours = this.isRegistry(target);
    const res = await this.fetch(url, { method, headers: ours ? this.withAuth(headers) : headers });
    // A 401 from where a redirect led is that host's challenge, not the registry's.
    if (!ours || res.status !== 401 || this.challenged || !this.isRegistry(this.answeredBy)) return res;
    this.challenged = true;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    if (!challenge) return res; // nothing to answer: the caller maps the 401
    await drain(res);
    if (challenge.scheme === 'basic') {
      this.scheme = 'basic';
      if (!this.creds) throw this.noCredentials();
      this.authorization = basic(this.creds);
    } else {
      this.scheme = 'bearer';
      const token = await this.bearerToken(challenge.params);
      this.secrets.push(token);
      this.authorization = `Bearer ${token}`;
    }
    return this.fetch(url, { method, headers: this.withAuth(headers) });
  }

  /** DELETEs the upload a probe started; best effort, the probe already answered. */
  async cancelUpload(res: Response): Promise<void> {
    const location = res.headers.get('location');
    if (!location) return;
    try {
      const target = new URL(location, res.url || this.base);
      // An upload on another host is not ours to cancel with our credentials,
      // and without them the DELETE would only tell that host we were here.
      if (!this.isRegistry(target)) return;
      const del = await this.send('DELETE', target.toString());
      await drain(del);
    } catch {
      // An abandoned upload is purged by the registry later; nothing to tell.
    }
  }

  /** Error for credentials refused (or missing) at this registry. */
  authFailed(res: Response, text: string): WarmstartError {
    if (!this.creds) return this.noCredentials(res.status);
    return this.error(
      'REGISTRY_AUTH_FAILED',
      `registry ${this.host} refused the credentials of ${this.creds.username} (from ${this.creds.source})`,
      res,
      text,
    );
  }

  /** A WarmstartError whose detail holds the status and registry's words, secrets removed. */
  error(code: ErrorCode, message: string, res: Response, text: string): WarmstartError {
    return new WarmstartError(code, message, { detail: this.redact(`HTTP ${res.status}${text ? `: ${text}` : ''}`) });
  }

  private noCredentials(status = 401): WarmstartError {
    return new WarmstartError('REGISTRY_AUTH_FAILED', `registry ${this.host} requires credentials and none are configured`, {
      detail: `HTTP ${status}`,
    });
  }

  /** Same scheme, host and port as the registry this session's credentials are for. */
  private isRegistry(url: URL): boolean {
    return url.origin === new URL(this.base).origin;
  }

  private withAuth(headers: Record<string, string>): Record<string, string> {
    return this.authorization ? { ...headers, authorization: this.authorization } : headers;
  }

  /** Fetches a token from the challenge's realm (the distribution token spec). */
  private async bearerToken(params: Record<string, string>): Promise<string> {
    const realm = params.realm;
    if (!realm) {
      throw new WarmstartError('REGISTRY_ERROR', `registry ${this.host} sent a Bearer challenge without a realm`);
    }
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new WarmstartError('REGISTRY_ERROR', `registry ${this.host} sent an unusable token realm`, {
        detail: realm.slice(0, 200),
      });
    }
    if (params.service) url.searchParams.set('service', params.service);
    const scope = this.scope ?? params.scope;
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    // Credentials go only where they cannot be read in transit.
    if (this.creds && (url.protocol === 'https:' || isInsecure(url.host, this.env.insecure))) {
      headers.authorization = basic(this.creds);
    }
    const res = await this.fetch(url.toString(), { method: 'GET', headers });
    const text = await res.text().catch(() => '');
    if (res.status === 401 || res.status === 403) {
      if (!this.creds) {
        throw new WarmstartError('REGISTRY_AUTH_FAILED', `registry ${this.host} requires credentials and none are configured`, {
          detail: `token endpoint ${url.host}: HTTP ${res.status}`,
        });
      }
      throw new WarmstartError(
        'REGISTRY_AUTH_FAILED',
        `token service of ${this.host} refused the credentials of ${this.creds.username} (from ${this.creds.source})`,
        { detail: this.redact(`token endpoint ${url.host}: HTTP ${res.status}${summarize(text) ? `: ${summarize(text)}` : ''}`) },
      );
    }
    if (!res.ok) {
      throw new WarmstartError('REGISTRY_ERROR', `token service of ${this.host} failed`, {
        detail: this.redact(`token endpoint ${url.host}: HTTP ${res.status}${summarize(text) ? `: ${summarize(text)}` : ''}`),
      });
    }
    let token: unknown;
    try {
      const body = JSON.parse(text) as { token?: unknown; access_token?: unknown };
      token = body.token ?? body.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token === '') {
      throw new WarmstartError('REGISTRY_ERROR', `token service of ${this.host} returned no token`, {
        detail: `token endpoint ${url.host}: HTTP ${res.status}`,
      });
    }
    return token;
  }

  /**
   * Follows redirects by hand (fetch's own following would carry our
   * Authorization along): once a hop leaves the origin of the request, the
   * Authorization header is dropped for the rest of the chain.
   */
  private async fetch(url: string, init: { method: string; headers: Record<string, string> }): Promise<Response> {
    let current = new URL(url);
    let { method, headers } = init;
    for (let hop = 0; ; hop++) {
      const res = await this.fetchOnce(current.toString(), { method, headers });
      this.answeredBy = current;
      const location = REDIRECTS.has(res.status) ? res.headers.get('location') : null;
      if (location === null || hop >= MAX_REDIRECTS) return res;
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        return res; // an unusable Location: the caller maps the 3xx
      }
      await drain(res);
      if (next.origin !== current.origin) headers = withoutAuthorization(headers);
      // As fetch does: 303 turns anything but HEAD into GET, 301/302 turn a POST into GET.
      if ((res.status === 303 && method !== 'HEAD') || ((res.status === 301 || res.status === 302) && method === 'POST')) method = 'GET';
      current = next;
    }
  }

  /** One request with a timeout; transport failures become REGISTRY_UNREACHABLE. */
  private async fetchOnce(url: string, init: RequestInit): Promise<Response> {
    const timeout = AbortSignal.timeout(this.env.timeoutMs);
    const signal = this.signal ? AbortSignal.any([timeout, this.signal]) : timeout;
    try {
      return await this.env.fetch(url, { ...init, signal, redirect: 'manual' });
    } catch (err) {
      // The caller cancelled: that is their decision, not a registry fault.
      if (this.signal?.aborted) throw this.signal.reason;
      const where = new URL(url).host;
      if (timeout.aborted) {
        throw new WarmstartError('REGISTRY_UNREACHABLE', `registry ${this.host} did not answer in time`, {
          detail: `${init.method ?? 'GET'} ${where}: no answer within ${this.env.timeoutMs} ms`,
        });
      }
      throw new WarmstartError('REGISTRY_UNREACHABLE', `cannot reach registry ${this.host}`, {
        detail: this.redact(`${init.method ?? 'GET'} ${where}: ${causeText(err)}`),
      });
    }
  }

  private redact(text: string): string {
    let out = text;
    for (const s of this.secrets) if (s) out = out.split(s).join('[REDACTED]');
    return out;
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
}

/** `host[:port]/path` split and checked against the OCI name rules. */
function parseRepository(repository: string): { host: string; path: string } {
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
const REFERENCE = /^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})$/;

/** Docker's default insecure set (loopback), plus what the operator allows. */
function isInsecure(host: string, allow: (host: string) => boolean): boolean {
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return name === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(name) || name === '[::1]' || allow(host);
}

/** Docker Hub's API lives on another host than its image references say. */
function apiHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate`; Bearer wins when both are offered. */
function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const bearer = /(?:^|[\s,])Bearer\s+(.*)$/i.exec(header);
  if (bearer) {
    const params: Record<string, string> = {};
    for (const m of (bearer[1] ?? '').matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
      const key = m[1]!.toLowerCase();
      if (key in params) break; // the next challenge's parameters
      params[key] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
    }
    return { scheme: 'bearer', params };
  }
  if (/(?:^|[\s,])Basic(?:\s|$)/i.test(header)) return { scheme: 'basic', params: {} };
  return null;
}

function basic(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** Consumes a body: drained when ok, else summarized (the registry's error codes and messages). */
async function bodySummary(res: Response): Promise<string> {
  if (res.ok) {
    await drain(res);
    return '';
  }
  return summarize(await res.text().catch(() => ''));
}

/** `{"errors":[{code,message}]}` as `CODE: message; ...`, else the start of the text. */
function summarize(text: string): string {
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(body.errors)) {
      return body.errors
        .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x).join(': '))
        .join('; ')
        .slice(0, 300);
    }
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/** Frees the connection of a response whose body we do not need. */
async function drain(res: Response): Promise<void> {
  if (!res.bodyUsed) await res.body?.cancel().catch(() => {});
}

/** The useful part of a fetch failure: undici hides it in `cause`. */
function causeText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const c = e.cause;
  // undici refuses the WHATWG "bad ports" (1, 6000, 10080, ...) before connecting.
  if (c?.message === 'bad port') return 'bad port: fetch refuses to connect to this port (WHATWG blocked-port list)';
  if (c && (c.code || c.message)) return [c.code, c.message].filter(Boolean).join(': ');
  return e.message ?? String(err);
}
