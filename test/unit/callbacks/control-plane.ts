import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the fake control plane saw it. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the request's body had arrived */
  at: number;
}

/** What the fake answers: a status (with headers), no answer at all, or a dropped connection. */
export type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'destroy';

export interface ControlPlane {
  url: string;
  port: number;
  requests: Received[];
  /** Replaces the script for the requests still to come. */
  script: (req: Received, index: number) => Reply;
  /** Resolves once `n` requests arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A real node:http server on 127.0.0.1 whose every answer the test scripts. */
export async function startControlPlane(script: (req: Received, index: number) => Reply = () => ({ status: 200 }), port = 0): Promise<ControlPlane> {
  const requests: Received[] = [];
  const waiters: Array<() => void> = [];
  const plane = { requests, script } as ControlPlane;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      const reply = plane.script(received, requests.length);
      requests.push(received);
      for (const w of waiters.splice(0)) w();
      if (reply === 'hang') return;
      if (reply === 'destroy') {
        req.socket.destroy();
        return;
      }
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body ?? '{}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  plane.port = actualPort;
  plane.url = `http://127.0.0.1:${actualPort}`;
  plane.waitFor = async (n, timeoutMs = 2500) => {
    const deadline = Date.now() + timeoutMs;
    while (requests.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} requests, got ${requests.length}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  plane.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return plane;
}

/** A logger that keeps every line, to check what was said and that no secret was. */
export function captureLogger(): {
  lines: Array<{ level: 'info' | 'warn'; obj: object; msg: string }>;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  text(): string;
} {
  const lines: Array<{ level: 'info' | 'warn'; obj: object; msg: string }> = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    text: () => JSON.stringify(lines),
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
