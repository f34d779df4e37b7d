import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * An HTTP proxy in front of a real registry that can shut the registry to
 * Docker engines only: requests from the agent's own registry client (Node's
 * fetch, `user-agent: node`) go through, requests from a docker daemon or the
 * BuildKit inside it (`docker/...`, `buildkit/...`, `containerd/...`) get
 * `refuse` once `closeToEngines` is called. That is a registry that goes away,
 * or starts refusing the credentials, between the agent's read of the moving
 * image's labels and BuildKit's own read of the cache during the build (on a
 * BuildKit node the agent does not wait for the pull; the builder reads the
 * registry itself).
 *
 * Listens on 127.0.0.1 (Docker treats 127.0.0.0/8 as an insecure registry).
 */
export interface EngineGateProxy {
  /** `127.0.0.1:<port>`: use it as the registry host */
  readonly host: string;
  /**
   * From now on, engine requests get `how`: 'down' (connection reset) or
   * 'unauthorized' (401), each after `delayMs` (default 0): a registry that
   * stops answering the engine while the agent has already read what it needed.
   */
  closeToEngines(how: 'down' | 'unauthorized', delayMs?: number): void;
  /** engine requests refused so far, as `METHOD path (user-agent)` */
  refused(): string[];
  /** every user-agent seen, with its request count */
  agents(): Record<string, number>;
  close(): Promise<void>;
}

const NODE_UA = /^node\b|undici/i;

export async function startEngineGateProxy(upstream: string): Promise<EngineGateProxy> {
  const sep = upstream.lastIndexOf(':');
  const upHost = upstream.slice(0, sep);
  const upPort = Number(upstream.slice(sep + 1));
  let gate: 'open' | 'down' | 'unauthorized' = 'open';
  let refuseAfterMs = 0;
  const refused: string[] = [];
  const agents: Record<string, number> = {};
  const sockets = new Set<Socket>();

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const ua = String(req.headers['user-agent'] ?? '');
    const key = ua.split(' ')[0] || '(none)';
    agents[key] = (agents[key] ?? 0) + 1;
    if (gate !== 'open' && !NODE_UA.test(ua)) {
      refused.push(`${req.method} ${req.url} (${ua.slice(0, 60)})`);
      const how = gate;
      setTimeout(() => {
        if (how === 'down') {
          req.socket.destroy();
          return;
        }
        res.writeHead(401, {
          'content-type': 'application/json',
          'docker-distribution-api-version': 'registry/2.0',
          'www-authenticate': 'Basic realm="engine-gate"',
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      }, refuseAfterMs);
      return;
    }
    const up = request(
      // The Host header stays the proxy's: the registry builds upload Locations from it.
      { host: upHost, port: upPort, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('engine gate proxy: no port');
  const timer = setTimeout(() => void close(), 600_000);
  timer.unref();
  const close = async (): Promise<void> => {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    host: `127.0.0.1:${addr.port}`,
    closeToEngines: (how, delayMs = 0) => {
      gate = how;
      refuseAfterMs = delayMs;
      // Kept-alive engine connections must not outlive the gate.
      for (const s of sockets) s.destroy();
    },
    refused: () => [...refused],
    agents: () => ({ ...agents }),
    close,
  };
}
