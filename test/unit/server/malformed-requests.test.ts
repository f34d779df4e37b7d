import { connect } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../shared/src/api.js';
import { toHttpError } from '../../../agent/src/server/http-error.js';
import { memoryLogger, testServer, TOKEN, type TestServer } from './harness.js';

// Requests the fuzzer (test/faults/fuzz.test.ts) found answered outside the
// one error shape, with a 500, or not at all. Sent over a raw socket: fetch
// will not send most of them.

interface Raw {
  status: number;
  head: string;
  body: string;
}

let server: TestServer;
let port: number;
const logs = memoryLogger();

beforeAll(async () => {
  server = testServer({ logger: logs.logger });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  port = (server.app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await server.app.close();
});

/** Writes `head` (and `body`), never half-closing, and reads until the server closes. */
function raw(head: string, body: Buffer | string = ''): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: Number(text.slice(9, 12)), head: text.slice(0, split), body: text.slice(split + 4) });
    });
    socket.on('connect', () => {
      socket.write(head);
      if (body.length) socket.write(body);
    });
  });
}

const auth = `Authorization: Bearer ${TOKEN}\r\n`;

function expectShape(r: Raw, status: number, code: string): void {
  expect(r.status, r.head).toBe(status);
  expect(r.head).toMatch(/content-type: application\/json/i);
  const body = ApiError.strict().parse(JSON.parse(r.body));
  expect(body.code).toBe(code);
}

describe('refusals before any route runs, in the one error shape', () => {
  it("a URL that does not decode → 400 INVALID_REQUEST (was fastify's own body)", async () => {
    expectShape(await raw(`GET /v1/workspaces/%ZZ HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`), 400, 'INVALID_REQUEST');
  });

  it("a path segment past the router's limit → 400 INVALID_REQUEST (was 414 in fastify's shape)", async () => {
    expectShape(await raw(`GET /v1/workspaces/${'a'.repeat(101)} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`), 400, 'INVALID_REQUEST');
  });

  it('QUERY without a Content-Type → 400 INVALID_REQUEST (was a 500)', async () => {
    expectShape(await raw(`QUERY /v1/workspaces HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`), 400, 'INVALID_REQUEST');
  });

  it.each([
    ['a non-numeric Content-Length', `POST /v1/workspaces HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 12abc\r\n\r\n`],
    ['two different Content-Lengths', `POST /v1/workspaces HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}`],
    ['a control byte in a header', `GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n`],
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n'],
  ])("%s → 400 INVALID_REQUEST from the parser (was fastify's shape)", async (_what, head) => {
    expectShape(await raw(head), 400, 'INVALID_REQUEST');
  });

  it('headers over the size limit → 431 INVALID_REQUEST', async () => {
    expectShape(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'INVALID_REQUEST');
  });

  it('HTTP/1.1 without Host → 400 INVALID_REQUEST (was an empty 400)', async () => {
    expectShape(await raw(`GET /v1/workspaces HTTP/1.1\r\n${auth}Connection: close\r\n\r\n`), 400, 'INVALID_REQUEST');
    // HTTP/1.0 has no Host requirement.
    expect((await raw(`GET /health HTTP/1.0\r\n\r\n`)).status).toBe(200);
  });

  it('an Expect other than 100-continue → 417 INVALID_REQUEST (was an empty 417)', async () => {
    expectShape(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nExpect: x-fuzz\r\nConnection: close\r\n\r\n`), 417, 'INVALID_REQUEST');
  });

  it("the parser's refusal never logs the raw request (it holds the Authorization header)", async () => {
    await raw(`POST /v1/workspaces HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: nope\r\n\r\n`);
    expect(logs.output()).toMatch(/malformed request refused/);
    expect(logs.output()).not.toContain(TOKEN);
  });
});

describe('a refusal sent before the body was read reaches a client still sending', () => {
  // The client runs in its own process, as a real one does, and sends 5 MB:
  // far more than the socket buffers hold, so it is still writing when the
  // answer comes. Closing at once used to reset the connection under the
  // answer: the client saw EPIPE instead of the 413 or 401.
  const client = `
    const net = require('node:net');
    const [port, mode, auth] = process.argv.slice(1);
    const big = Buffer.alloc(5_000_000, 0x61);
    const headers = { 'content-type': 'application/json', ...(auth ? { authorization: 'Bearer ' + auth } : {}) };
    if (mode === 'fetch') {
      fetch('http://127.0.0.1:' + port + '/v1/workspaces', { method: 'POST', headers, body: big }).then(
        async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })),
        (e) => console.log(JSON.stringify({ error: String(e.cause?.code ?? e) })),
      );
    } else {
      const s = net.connect(Number(port), '127.0.0.1');
      const chunks = [];
      let error = null;
      s.on('data', (d) => chunks.push(d));
      s.on('error', (e) => (error = e.code));
      s.on('close', () => {
        const text = Buffer.concat(chunks).toString();
        const at = text.indexOf('\\r\\n\\r\\n');
        console.log(JSON.stringify(text ? { status: Number(text.slice(9, 12)), body: text.slice(at + 4) } : { error }));
      });
      const lines = ['POST /v1/workspaces HTTP/1.1', 'Host: x', 'Content-Type: application/json', 'Content-Length: ' + big.length, 'Connection: close'];
      if (auth) lines.push('Authorization: Bearer ' + auth);
      s.write(lines.join('\\r\\n') + '\\r\\n\\r\\n');
      s.write(big);
    }`;

  async function send(mode: 'fetch' | 'raw', token: string): Promise<{ status?: number; body?: string; error?: string }> {
    const r = await execa(process.execPath, ['-e', client, String(port), mode, token], { reject: false });
    return JSON.parse(String(r.stdout)) as { status?: number; body?: string; error?: string };
  }

  it.each([
    ['over the body limit', 'fetch', TOKEN, 413, 'PAYLOAD_TOO_LARGE'],
    ['over the body limit', 'raw', TOKEN, 413, 'PAYLOAD_TOO_LARGE'],
    ['without credentials', 'fetch', '', 401, 'UNAUTHENTICATED'],
    ['without credentials', 'raw', '', 401, 'UNAUTHENTICATED'],
  ] as const)('%s, over %s: the client reads the answer', async (_what, mode, token, status, code) => {
    for (let i = 0; i < 3; i++) {
      const r = await send(mode, token);
      expect(r, JSON.stringify(r)).toMatchObject({ status });
      expect((JSON.parse(r.body!) as { code: string }).code).toBe(code);
    }
  });
});

describe("toHttpError: fastify's own client errors", () => {
  it('maps any FST_ERR_ with a 4xx statusCode to that status and INVALID_REQUEST, not a 500', () => {
    const err = Object.assign(new Error("Method 'X' is odd"), { code: 'FST_ERR_SOMETHING_NEW', statusCode: 422 });
    expect(toHttpError(err)).toEqual({ status: 422, body: { code: 'INVALID_REQUEST', message: 'the request is not valid' } });
    // Not fastify's, or not a client error: still a bare 500.
    expect(toHttpError(Object.assign(new Error('x'), { code: 'EACCES', statusCode: 400 })).status).toBe(500);
    expect(toHttpError(Object.assign(new Error('x'), { code: 'FST_ERR_X', statusCode: 500 })).status).toBe(500);
  });
});
