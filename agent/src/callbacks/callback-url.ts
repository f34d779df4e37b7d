import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { WarmstartError } from '../errors.js';
import { refusedAddress } from './refused-address.js';

/** All addresses of a host name; `dns.lookup` (what fetch uses) by default. */
export type ResolveHost = (host: string) => Promise<string[]>;

/**
 * Where callbacks may go. `origins`: WARMSTART_CALLBACK_ORIGINS plus the
 * origin of WARMSTART_CONTROL_PLANE_URL. When it is not empty, a callback
 * URL must have one of them; a listed origin may also be on a private or
 * loopback address (the operator named it), an unlisted one may not.
 */
export interface CallbackPolicy {
  origins: ReadonlySet<string>;
  resolve?: ResolveHost;
}

const systemResolve: ResolveHost = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * The callback origins from WARMSTART_CALLBACK_ORIGINS (comma-separated) and
 * the control plane's URL. Throws INVALID_ARGUMENT for an entry that is not
 * a bare http(s) origin, so a typo stops the agent at start-up rather than
 * refusing every callback later.
 */
export function callbackOrigins(list: string | null, controlPlaneUrl: string | null): Set<string> {
  const origins = new Set<string>();
  const entries = (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const entry of entries) {
    let url: URL | null = null;
    try {
      url = new URL(entry);
    } catch {
      // reported below
    }
    const bare =
      url !== null &&
      /^https?:$/.test(url.protocol) &&
      url.username === '' &&
      url.password === '' &&
      url.pathname === '/' &&
      entry.replace(/\/$/, '') === url.origin;
    if (!url || !bare) {
      throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_CALLBACK_ORIGINS: '${entry}' is not an origin such as https://cp.example.com`);
    }
    origins.add(url.origin);
  }
  if (controlPlaneUrl) {
    try {
      origins.add(new URL(controlPlaneUrl).origin);
    } catch {
      throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_CONTROL_PLANE_URL is not a URL');
    }
  }
  return origins;
}

/** Why `raw` is not a callback URL this agent will POST to, or null when it is. */
export async function callbackUrlProblem(raw: string, policy: CallbackPolicy): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'it is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'it must be an http(s) URL';
  // A `?` or `#` (even an empty one) would swallow the path the agent appends.
  if (raw.includes('?')) return 'it must not have a query (`?`)';
  if (raw.includes('#')) return 'it must not have a fragment (`#`)';
  if (url.username !== '' || url.password !== '' || /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(raw)) {
    return 'it must not carry credentials (the callback token is sent as a header)';
  }
  const listed = policy.origins.has(url.origin);
  if (listed) return null;
  if (policy.origins.size > 0) return 'its origin is not one of WARMSTART_CALLBACK_ORIGINS';
  return hostProblem(url.hostname, policy.resolve ?? systemResolve);
}

/** Why a callback may not go to `hostname` (an IP literal or a name, every address it resolves to), or null. */
async function hostProblem(hostname: string, resolve: ResolveHost): Promise<string | null> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) {
    const why = refusedAddress(host);
    return why === null ? null : `its host is ${why}; list its origin in WARMSTART_CALLBACK_ORIGINS to allow it`;
  }
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch {
    return 'its host name does not resolve';
  }
  if (addresses.length === 0) return 'its host name does not resolve';
  for (const address of addresses) {
    const why = refusedAddress(address);
    if (why !== null) return `its host resolves to ${why}; list its origin in WARMSTART_CALLBACK_ORIGINS to allow it`;
  }
  return null;
}

/** Throws INVALID_CALLBACK_URL (400) unless `raw` is a callback URL this agent will POST to. The URL is not echoed: it may hold a secret. */
export async function assertCallbackUrl(raw: string, policy: CallbackPolicy): Promise<void> {
  const why = await callbackUrlProblem(raw, policy);
  if (why !== null) throw new WarmstartError('INVALID_CALLBACK_URL', `callback.url refused: ${why}`);
}

/**
 * `<base>/workspaces/<id>/<kind>`, built with the URL API so the suffix is
 * always part of the path (whatever the base ends with), never of a query or
 * fragment.
 */
export function callbackTarget(base: string, workspaceId: string, kind: string): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/workspaces/${encodeURIComponent(workspaceId)}/${encodeURIComponent(kind)}`;
  url.search = '';
  url.hash = '';
  url.username = '';
  url.password = '';
  return url.href;
}
