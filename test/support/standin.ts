import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** One request a stand-in server received, with every header and the body as text. */
export interface RecordedRequest {
  method: string;
  /** path and query as sent */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** What a stand-in answers; by default 200 with an empty JSON object. */
export type StandinHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface Standin {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` */
  host: string;
  port: number;
  requests: RecordedRequest[];
  /** true when any recorded request (headers or body) holds `needle` */
  saw(needle: string): boolean;
  close(): Promise<void>;
}

/**
 * A stand-in for a server an attacker controls (a registry, a git host, an
 * internal service) on a loopback port: it records every request it gets,
 * headers and body included, so a test can show that nothing was sent to it.
 */
export async function startStandin(handler?: StandinHandler): Promise<Standin> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('latin1'),
      };
      requests.push(recorded);
      if (handler) {
        void Promise.resolve(handler(recorded, res)).catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
        });
      } else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    saw: (needle) =>
      requests.some(
        (r) => r.body.includes(needle) || Object.values(r.headers).some((v) => String(v).includes(needle) || decodesTo(String(v), needle)),
      ),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A Basic authorization header hides the secret in base64: look inside it too. */
function decodesTo(value: string, needle: string): boolean {
  const m = /^Basic\s+(\S+)$/i.exec(value);
  return m !== null && Buffer.from(m[1]!, 'base64').toString('utf8').includes(needle);
}
