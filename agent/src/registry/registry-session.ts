/**
 * One operation's conversation with a registry (auth challenge, redirects,
 * timeouts, redaction), shared by the probing client (registry-client.ts)
 * and the calls that read and write manifests and tags (oci-api.ts).
 */
import { WarmstartError, type ErrorCode } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';
import type { RegistryTransports, RegistryRoute } from './registry-transports.js';
import { tlsFailure } from './tls-failure.js';

export interface Env {
  timeoutMs: number;
  /** how each registry is reached (scheme, TLS settings), as dockerd would */
  transports: RegistryTransports;
}

/**
 * One operation's conversation with a registry: the first request goes out
 * anonymously, a 401 challenge is answered once (Basic, or a Bearer token
 * from the realm), and later requests of the same operation reuse that. Its
 * route (registry-transports.ts) is taken on the first request: https, or
 * for a registry the engine treats as insecure https then plain http.
 */
export class Session {
  /** scheme://host of the registry's API: https until the route says otherwise */
  base: string;
  scheme: 'none' | 'basic' | 'bearer' = 'none';
  private authorization: string | undefined;
  private challenged = false;
  /** where the last response came from, after any redirects */
  private answeredBy: URL;
  private readonly secrets: string[];
  private routing: Promise<RegistryRoute> | undefined;
  private route: RegistryRoute | undefined;
  /** true once the registry itself has answered a request of this session */
  private answered = false;
  /** failures before any request reached the registry (refused, reset, TLS): the ones an insecure registry's http attempt follows */
  private readonly unconnected = new WeakSet<object>();

  constructor(
    private readonly env: Env,
    readonly host: string,
    private readonly creds: RegistryCredentials | null,
    private readonly scope: string | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.base = `https://${apiHost(host)}`;
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
    await this.ready();
    try {
      return await this.exchange(method, pathOrUrl, headers, body);
    } catch (err) {
      const again = this.overHttp(err, pathOrUrl);
      if (again === null) throw err;
      try {
        return await this.exchange(method, again, headers, body);
      } catch (second) {
        throw bothFailed(this.host, err, second);
      }
    }
  }

  /** Takes the route once: the scheme to start with is the one the registry last answered over, else the route's first. */
  private ready(): Promise<RegistryRoute> {
    this.routing ??= this.env.transports.route(this.host).then((route) => {
      this.route = route;
      const last = this.env.transports.answeredOver(this.host);
      this.base = `${last && route.schemes.includes(last) ? last : route.schemes[0]}://${apiHost(this.host)}`;
      this.answeredBy = new URL(this.base);
      return route;
    });
    return this.routing;
  }

  /**
   * For an insecure registry whose https attempt failed before any request
   * got through, and that has not answered yet in this session: switches the
   * session to plain http (as dockerd does) and gives the URL to send again;
   * null otherwise.
   */
  private overHttp(err: unknown, pathOrUrl: string): string | null {
    const base = new URL(this.base);
    if (this.answered || base.protocol !== 'https:' || !this.route?.schemes.includes('http')) return null;
    if (typeof err !== 'object' || err === null || !this.unconnected.has(err) || this.signal?.aborted) return null;
    const target = new URL(pathOrUrl, base);
    if (target.origin !== base.origin) return null;
    base.protocol = 'http:';
    this.base = base.origin;
    this.answeredBy = new URL(this.base);
    return `${this.base}${target.pathname}${target.search}`;
  }

  private async exchange(method: string, pathOrUrl: string, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
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
    // Credentials go only where they cannot be read in transit, or where the engine would send them in the clear too.
    if (this.creds && (url.protocol === 'https:' || (await this.insecure(url.host)))) {
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

  /** Whether the engine treats `host` as an insecure registry (a certs.d entry that cannot be read counts as no). */
  private async insecure(host: string): Promise<boolean> {
    return this.env.transports.route(host).then(
      (r) => !r.secure,
      () => false,
    );
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
      const res = await this.fetchOnce(current.toString(), { method, headers, body });
      this.answeredBy = current;
      if (!this.answered && this.isRegistry(current)) {
        this.answered = true;
        this.env.transports.answered(this.host, current.protocol === 'http:' ? 'http' : 'https');
      }
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
  private async fetchOnce(url: string, init: { method: string; headers: Record<string, string>; body?: Uint8Array | undefined }): Promise<Response> {
    const timeout = AbortSignal.timeout(this.env.timeoutMs);
    const signal = this.signal ? AbortSignal.any([timeout, this.signal]) : timeout;
    const target = new URL(url);
    const send = this.route!.fetchFor(target);
    try {
      return await send(url, { ...init, signal });
    } catch (err) {
      // The caller cancelled: that is their decision, not a registry fault.
      if (this.signal?.aborted) throw this.signal.reason;
      const where = target.host;
      if (timeout.aborted) {
        throw new WarmstartError('REGISTRY_UNREACHABLE', `registry ${this.host} did not answer in time`, {
          detail: `${init.method} ${where}: no answer within ${this.env.timeoutMs} ms`,
        });
      }
      const detail = this.redact(`${init.method} ${where}: ${causeText(err)}`);
      const tls = target.protocol === 'https:' && this.route!.secure ? tlsFailure(err, this.route!, target.host) : null;
      const out = new WarmstartError('REGISTRY_UNREACHABLE', tls ?? `cannot reach registry ${this.host}`, { detail });
      this.unconnected.add(out);
      throw out;
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

/** The https attempt's failure and the http attempt's, as one error (the http one alone when it got further). */
function bothFailed(host: string, first: unknown, second: unknown): unknown {
  if (!(first instanceof WarmstartError) || !(second instanceof WarmstartError) || second.code !== 'REGISTRY_UNREACHABLE') return second;
  return new WarmstartError('REGISTRY_UNREACHABLE', `cannot reach registry ${host} over https or http`, {
    detail: `https: ${first.detail ?? first.message}; http: ${second.detail ?? second.message}`,
  });
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
  if (c && (c.code || c.message)) return [c.code, opensslReason(c.message)].filter(Boolean).join(': ');
  return e.message ?? String(err);
}

/** OpenSSL's `<n>:error:<id>:SSL routines:<function>:<reason>:<file>:<line>:` (one per line) cut to its reasons. */
function opensslReason(message: string | undefined): string | undefined {
  const reasons = [...(message ?? '').matchAll(/:error:[0-9A-F]+:[^:]*:[^:]*:([^:\n]+):/g)].map((m) => m[1]!);
  return reasons.length > 0 ? reasons.join('; ') : message;
}
