import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface ReceivedCall {
  method: string;
  path: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  body: unknown;
  answered: number;
}

/**
 * A control plane for tests, on a real loopback port: records every call and
 * answers with the status the test scripts (`refuseFirst` calls get 503).
 */
export async function startControlPlane(o: { refuseFirst?: number } = {}): Promise<{
  url: string;
  calls: ReceivedCall[];
  setRefuse(n: number): void;
  close(): Promise<void>;
}> {
  const calls: ReceivedCall[] = [];
  let refuse = o.refuseFirst ?? 0;
  const read = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => resolve(data));
    });
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await read(req);
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // recorded as text
    }
    const status = refuse > 0 ? 503 : 200;
    if (refuse > 0) refuse -= 1;
    calls.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      idempotencyKey: req.headers['idempotency-key'] as string | undefined,
      body,
      answered: status,
    });
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
  };
  // The server does not wait for a handler; answer() cannot reject (read() does not).
  const server: Server = createServer((req, res) => void answer(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    setRefuse: (n) => (refuse = n),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
