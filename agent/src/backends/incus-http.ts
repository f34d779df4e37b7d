/**
 * The transport under the Incus/LXD client: plain HTTP/1.1 over the daemon's
 * unix socket with node:http (`socketPath`), and the choice of that socket
 * the way the `incus` client makes it, with LXD's socket last (its REST API
 * is the same for every call we make).
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import { WarmstartError } from '../errors.js';

/** One raw answer of the daemon. */
export interface UnixHttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; `body` is sent as is, with the headers given. */
export interface UnixHttpRequest {
  method: string;
  path: string;
  body?: Buffer;
  headers?: Record<string, string>;
  timeoutMs: number;
}

/** Sends one request over a unix socket. Connection failures are BACKEND_UNAVAILABLE, a timeout BACKEND_ERROR. */
export function unixRequest(socketPath: string, req: UnixHttpRequest): Promise<UnixHttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body) headers['content-length'] = String(req.body.length);
    // The daemon ignores the host; node:http needs one.
    const r = http.request({ socketPath, path: req.path, method: req.method, headers: { host: 'incus', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    r.setTimeout(req.timeoutMs, () => {
      r.destroy(
        new WarmstartError('BACKEND_ERROR', `incus: ${req.method} ${req.path} timed out after ${req.timeoutMs} ms`, {
          detail: `socket ${socketPath}`,
        }),
      );
    });
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof WarmstartError) return reject(err);
      reject(
        new WarmstartError('BACKEND_UNAVAILABLE', `no Incus or LXD daemon answers on ${socketPath}`, {
          cause: err,
          detail: err.code ?? err.message,
        }),
      );
    });
    r.end(req.body);
  });
}

/**
 * Where to look for the daemon, in order: `$INCUS_SOCKET`,
 * `/run/incus/unix.socket`, `/var/lib/incus/unix.socket`, then LXD's
 * `/var/lib/lxd/unix.socket`.
 */
export function socketCandidates(env: NodeJS.ProcessEnv): string[] {
  const list = [env.INCUS_SOCKET, '/run/incus/unix.socket', '/var/lib/incus/unix.socket', '/var/lib/lxd/unix.socket'];
  return list.filter((p): p is string => typeof p === 'string' && p !== '');
}

/**
 * Picks the first candidate that exists and answers `GET /1.0`: a stale
 * socket file left by a stopped daemon must not hide a running one further
 * down the list. Throws BACKEND_UNAVAILABLE naming every path tried.
 */
export async function resolveSocket(candidates: string[], timeoutMs: number, exists: (p: string) => boolean = existsSync): Promise<string> {
  const tried: string[] = [];
  for (const p of candidates) {
    if (!exists(p)) {
      tried.push(`${p} (missing)`);
      continue;
    }
    try {
      const res = await unixRequest(p, { method: 'GET', path: '/1.0', timeoutMs });
      if (res.status === 200) return p;
      tried.push(`${p} (HTTP ${res.status})`);
    } catch (err) {
      tried.push(`${p} (${err instanceof WarmstartError ? (err.detail ?? err.message) : String(err)})`);
    }
  }
  throw new WarmstartError('BACKEND_UNAVAILABLE', 'no Incus or LXD daemon answers on any socket', {
    detail: `tried ${tried.join(', ')}`,
  });
}
