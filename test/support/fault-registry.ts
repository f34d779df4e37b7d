import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * An HTTP reverse proxy in front of a real registry that can misbehave on
 * purpose: rules answer chosen requests with an error status (5xx on
 * manifests, 401 on uploads...) instead of passing them on, and the whole
 * registry can be stopped and started again on the same port (a registry
 * that goes away and comes back at the same address).
 *
 * It listens on 127.0.0.1 with plain http (Docker treats 127.0.0.0/8 as an
 * insecure registry). The Host header is passed on unchanged, so the upstream
 * registry writes the proxy's address into upload Locations and every request
 * of a push comes back through the proxy. It closes itself after
 * `maxLifetimeMs`, so a test that forgets it cannot keep the process alive.
 */
export interface FaultRule {
  /** methods the rule applies to (upper case); all when absent */
  methods?: string[];
  /** matched against the request path (without the query) */
  path: RegExp;
  /** status sent instead of passing the request on */
  status: number;
  headers?: Record<string, string>;
}

/** What the proxy saw of one request. */
export interface SeenRequest {
  method: string;
  path: string;
  status: number;
  /** true when a rule answered it, false when the upstream did */
  faulted: boolean;
}

export interface FaultRegistry {
  /** `127.0.0.1:<port>`: use it as the registry host */
  readonly host: string;
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Replaces the rules; [] passes everything through. */
  setRules(rules: FaultRule[]): void;
  /** Stops listening and drops every connection: the registry is gone. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Stops for good; idempotent. */
  close(): Promise<void>;
}

export interface FaultRegistryOptions {
  /** upstream `host:port` (the real registry) */
  upstream: string;
  /** a fixed port, e.g. to come back where another proxy was; default: any free one */
  port?: number;
  rules?: FaultRule[];
  /** default 10 min */
  maxLifetimeMs?: number;
}

/** The error body a distribution registry sends, so clients print something sensible. */
function errorBody(status: number): string {
  const code = status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'DENIED' : status >= 500 ? 'UNAVAILABLE' : 'UNSUPPORTED';
  return JSON.stringify({ errors: [{ code, message: `injected fault: HTTP ${status}`, detail: null }] });
}

export async function startFaultRegistry(o: FaultRegistryOptions): Promise<FaultRegistry> {
  const sep = o.upstream.lastIndexOf(':');
  const upHost = o.upstream.slice(0, sep);
  const upPort = Number(o.upstream.slice(sep + 1));
  if (!upHost || !Number.isInteger(upPort) || upPort <= 0) throw new Error(`upstream must be host:port, got ${o.upstream}`);

  let rules = o.rules ?? [];
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let closed = false;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    const rule = rules.find((r) => (!r.methods || r.methods.includes(method)) && r.path.test(path));
    if (rule) {
      requests.push({ method, path, status: rule.status, faulted: true });
      req.resume();
      const body = method === 'HEAD' ? '' : errorBody(rule.status);
      res.writeHead(rule.status, { 'Content-Type': 'application/json', 'Docker-Distribution-Api-Version': 'registry/2.0', ...rule.headers });
      res.end(body);
      return;
    }
    const seen: SeenRequest = { method, path, status: 0, faulted: false };
    requests.push(seen);
    const up = httpRequest({ host: upHost, port: upPort, method, path: req.url, headers: req.headers }, (upRes) => {
      seen.status = upRes.statusCode ?? 0;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.on('aborted', () => up.destroy());
    req.pipe(up);
  };

  let server: Server | null = null;
  let port = o.port ?? 0;
  const listen = async (): Promise<void> => {
    const s = createServer(handle);
    s.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as { port: number }).port;
    server = s;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    if (!s) return;
    const done = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of sockets) sock.destroy();
    await done;
  };

  await listen();
  const lifetime = setTimeout(() => void close(), o.maxLifetimeMs ?? 600_000);
  lifetime.unref();
  const close = async (): Promise<void> => {
    closed = true;
    clearTimeout(lifetime);
    await stop();
  };

  return {
    host: `127.0.0.1:${port}`,
    port,
    requests,
    setRules: (r) => {
      rules = r;
    },
    stop,
    start: async () => {
      if (closed) throw new Error('fault registry was closed');
      if (!server) await listen();
    },
    close,
  };
}
