/**
 * One operation's conversation with a registry (auth challenge, redirects,
 * timeouts, redaction), shared by the probing client (registry-client.ts)
 * and the calls that read and write manifests and tags (oci-api.ts).
 */
import { WarmstartError, type ErrorCode } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';

export interface Env {
  fetch: typeof fetch;
  timeoutMs: number;
  insecure: (host: string) => boolean;
}

/**
 * One operation's conversation with a registry: the first request goes out
 * anonymously, a 401 challenge is answered once (Basic, or a Bearer token
 * from the realm), and later requests of the same operation reuse that.
 */
export class Session {
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
  async send(method: string, pathOrUrl: string, headers: Record<string, string> = {}, body?: Uint8Array): Promise<Response> {
    const target = new URL(pathOrUrl, this.base);
    const url = target.toString();
    const ours = this.isRegistry(target);
    const res = await this.fetch(url, { method, headers: ours ? this.withAuth(headers) : headers, body });
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
    return this.fetch(url, { method, headers: this.withAuth(headers), body });
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
    const text = await res.text().catch(() => ''); // no body: the status alone is reported
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
  private async fetch(url: string, init: { method: string; headers: Record<string, string>; body?: Uint8Array | undefined }): Promise<Response> {
    let current = new URL(url);
    let { method, headers, body } = init;
    for (let hop = 0; ; hop++) {
      const res = await this.fetchOnce(
        current.toString(),
        body === undefined ? { method, headers } : { method, headers, body: body as unknown as BodyInit },
      );
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
      if ((res.status === 303 && method !== 'HEAD') || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
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
export async function bodySummary(res: Response): Promise<string> {
  if (res.ok) {
    await drain(res);
    return '';
  }
  return summarize(await res.text().catch(() => '')); // no body: the status alone is reported
}

/** `{"errors":[{code,message}]}` as `CODE: message; ...`, else the start of the text. */
export function summarize(text: string): string {
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
export async function drain(res: Response): Promise<void> {
  if (!res.bodyUsed) await res.body?.cancel().catch(() => {}); // freeing the socket only
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
