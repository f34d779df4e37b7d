import { connect } from 'node:net';
import { CreateImageBody, CreateMachineBody, CreateWorkspaceBody, MachineName, SnapshotBody, WorkspaceId } from '../../../shared/src/api.js';
import type { AuthForm, Body, HttpCase } from './http-cases.js';
import { encodeSegment, latin1Bytes } from './strings.js';

/**
 * Builds a generated case into bytes on the wire and sends it: through fetch
 * when fetch will send it, over a raw socket otherwise. Before it goes out,
 * `confine` makes sure that whatever the agent accepts stays within this run:
 * a DELETE or a create that would pass validation is pointed at a name with
 * the run's prefix, and a job that would be accepted gets only dead ends
 * (registry, callback) on 127.0.0.1:9.
 */
export interface Target {
  /** host:port of the agent */
  host: string;
  port: number;
  token: string;
  /** every name of this run starts with it (`<run>-`) */
  prefix: string;
}

export interface Built {
  method: string;
  /** what goes in the request line (path and query), as the server will see it */
  target: string;
  headers: Array<[string, string]>;
  body: Buffer | null;
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** null for HEAD and for a stream we stopped reading */
  body: string | null;
}

export interface Sent {
  transport: 'fetch' | 'raw';
  answers: Answer[];
  /** what went wrong at the transport, if no answer came */
  error: string | null;
  built: Built;
}

// ---------------------------------------------------------------- build

/** A name of this run's objects; the generators use it for ids in bodies. */
const isOurs = (v: unknown): v is { ours: string } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { ours?: unknown }).ours === 'string';

function withPrefix(value: unknown, prefix: string): unknown {
  if (isOurs(value)) return `${prefix}${value.ours}`.slice(0, 63);
  if (Array.isArray(value)) return value.map((v) => withPrefix(v, prefix));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, { value: withPrefix(v, prefix), enumerable: true, configurable: true, writable: true });
    }
    return out;
  }
  return value;
}

const ours = (name: string, prefix: string): string => (name.startsWith(prefix) ? name : `${prefix}${name}`.slice(0, 63).replace(/-+$/, ''));

/**
 * A body that would pass the API's schema is kept inside the run: its names
 * get the run's prefix, its registry, cache ref and callback point at a
 * closed port, and a machine's base is an image no backend has.
 */
export function confineBody(value: unknown, prefix: string): unknown {
  if (CreateWorkspaceBody.safeParse(value).success) {
    const b = structuredClone(value) as Record<string, unknown> & { id: string; cache?: Record<string, string>; callback?: Record<string, string> };
    b.id = ours(b.id, prefix);
    if (b.cache) {
      const dead = (s: string): string => (/^(127\.0\.0\.1|localhost):9(\/|$)/.test(s) ? s : `127.0.0.1:9/${s}`);
      b.cache.registry = dead(b.cache.registry!);
      if (b.cache.ref !== undefined) b.cache.ref = dead(b.cache.ref);
    }
    if (b.callback) b.callback.url = 'http://127.0.0.1:9/cb';
    return b;
  }
  if (CreateMachineBody.safeParse(value).success) {
    const b = structuredClone(value) as { name: string; base: string };
    return { ...b, name: ours(b.name, prefix), base: `${prefix}absent-base` };
  }
  if (SnapshotBody.safeParse(value).success) {
    const b = structuredClone(value) as { machine: string; name: string };
    return { ...b, machine: ours(b.machine, prefix) };
  }
  if (CreateImageBody.safeParse(value).success) {
    const b = structuredClone(value) as { workspaceId: string; name: string };
    return { ...b, workspaceId: ours(b.workspaceId, prefix), name: ours(b.name, prefix) };
  }
  return value;
}

function decoded(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * A DELETE of a name the agent would take, not of this run, is turned into
 * one of this run, and so is the machine of anything but a read under
 * `/v1/machines/{name}/snapshots` (a restore or a delete of another's
 * snapshot): `target` is the path as the server sees it (after fetch's
 * normalisation of `..` and `\`).
 */
export function confineTarget(method: string, target: string, prefix: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const seg = path.split('/');
  if (
    seg.length >= 5 &&
    seg[0] === '' &&
    seg[1] === 'v1' &&
    seg[2] === 'machines' &&
    seg[4] === 'snapshots' &&
    !['GET', 'HEAD'].includes(method.toUpperCase())
  ) {
    const machine = decoded(seg[3]!);
    if (machine !== null && MachineName.safeParse(machine).success && !machine.startsWith(prefix)) {
      seg[3] = encodeURIComponent(ours(machine.toLowerCase().replace(/[^a-z0-9-]/g, '-'), prefix));
      return seg.join('/') + query;
    }
    return target;
  }
  if (method !== 'DELETE') return target;
  if (seg.length !== 4 || seg[0] !== '' || seg[1] !== 'v1') return target;
  const name = decoded(seg[3]!);
  if (name === null) return target;
  const takes =
    (seg[2] === 'workspaces' && WorkspaceId.safeParse(name).success) ||
    (seg[2] === 'machines' && MachineName.safeParse(name).success) ||
    (seg[2] === 'images' && name.length > 0 && name.length <= 128);
  if (!takes || name.startsWith(prefix)) return target;
  seg[3] = encodeURIComponent(ours(name.toLowerCase().replace(/[^a-z0-9-]/g, '-'), prefix));
  return seg.join('/') + query;
}

function bodyBytes(body: Body, prefix: string): Buffer | null {
  switch (body.kind) {
    case 'none':
      return null;
    case 'json':
      return Buffer.from(JSON.stringify(confineBody(withPrefix(body.value, prefix), prefix)) ?? 'null', 'utf8');
    case 'text': {
      // Malformed on purpose; if some text happens to parse into a valid body, confine it as well.
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.text);
      } catch {
        return Buffer.from(body.text, 'utf8');
      }
      const confined = confineBody(parsed, prefix);
      return Buffer.from(confined === parsed ? body.text : JSON.stringify(confined), 'utf8');
    }
    case 'bytes':
      return Buffer.from(body.hex, 'hex');
    case 'big': {
      const head = '{"id":"';
      const tail = '","repository":"octo/hello"}';
      return Buffer.from(head + 'a'.repeat(Math.max(0, body.bytes - head.length - tail.length)) + tail, 'utf8');
    }
    case 'deep':
      return Buffer.from('['.repeat(body.depth) + ']'.repeat(body.depth), 'utf8');
  }
}

function authHeaders(form: AuthForm, token: string): Array<[string, string]> {
  const bearer = `Bearer ${token}`;
  switch (form) {
    case 'valid':
      return [['authorization', bearer]];
    case 'lowercase-scheme':
      return [['authorization', `bearer ${token}`]];
    case 'extra-spaces':
      return [['authorization', `Bearer   ${token}  `]];
    case 'none':
      return [];
    case 'basic':
      return [['authorization', `Basic ${Buffer.from(`fuzz:${token}`).toString('base64')}`]];
    case 'scheme-only':
      return [['authorization', 'Bearer']];
    case 'empty-token':
      return [['authorization', 'Bearer ']];
    case 'token-suffix':
      return [['authorization', `${bearer}x`]];
    case 'token-cut':
      return [['authorization', bearer.slice(0, -1)]];
    case 'other-scheme':
      return [['authorization', `Token ${token}`]];
    case 'list':
      return [['authorization', `${bearer}, ${bearer}`]];
    case 'jwt-garbage':
      return [['authorization', 'Bearer eyJhbGciOiJub25lIn0.eyJ3b3Jrc3BhY2UiOiIqIn0.']];
    case 'huge':
      return [['authorization', `Bearer ${'a'.repeat(12_000)}`]];
    case 'unicode':
      return [['authorization', `Bearer ${token}\u{1F984}`]];
    case 'duplicate-wrong-first':
      return [
        ['authorization', 'Bearer wrong-token-0123456789'],
        ['authorization', bearer],
      ];
    case 'duplicate-valid-first':
      return [
        ['authorization', bearer],
        ['authorization', 'Bearer wrong-token-0123456789'],
      ];
  }
}

/** The request as it will go out (fetch's normalisation applied when it goes through fetch), confined to the run. */
export function build(c: HttpCase, t: Target): Built {
  const path = c.route.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const p = c.params[name]!;
    return encodeSegment(p.ours ? `${t.prefix}${p.value}`.slice(0, 63) : p.value, p.how);
  });
  let query = '';
  if (c.query && 'raw' in c.query) query = `?${c.query.raw}`;
  else if (c.query && c.query.length) {
    query = `?${c.query.map(([k, p]) => `${k}=${encodeSegment(p.ours ? `${t.prefix}${p.value}` : p.value, p.how)}`).join('&')}`;
  }
  let target = path + query;
  if (c.transport === 'fetch') {
    // What fetch will actually send: WHATWG URL parsing resolves `..`, turns `\` into `/`, encodes the rest.
    const u = new URL(`http://${t.host}:${t.port}${target.startsWith('/') ? '' : '/'}${target}`);
    target = u.pathname + u.search;
  }
  target = confineTarget(c.method, target, t.prefix);
  const headers: Array<[string, string]> = [...authHeaders(c.auth, t.token)];
  if (Array.isArray(c.contentType)) for (const v of c.contentType) headers.push(['content-type', v]);
  else if (c.contentType !== null) headers.push(['content-type', c.contentType]);
  headers.push(...c.headers);
  return { method: c.method, target, headers, body: bodyBytes(c.body, t.prefix) };
}

// ---------------------------------------------------------------- send

const TIMEOUT_MS = 20_000;

/** Sends a case; fetch first where it applies, the raw socket when fetch refuses or breaks off. */
export async function send(c: HttpCase, t: Target): Promise<Sent> {
  const built = build(c, t);
  if (c.transport === 'fetch') {
    const viaFetch = await sendFetch(built, t);
    if (viaFetch) return { transport: 'fetch', answers: [viaFetch], error: null, built };
  }
  const raw = await sendRaw(rawBytes(c, built, t), t, built.method, c.mutation === 'cl-long');
  return { transport: 'raw', ...raw, built };
}

async function sendFetch(b: Built, t: Target): Promise<Answer | null> {
  let res: Response;
  try {
    const headers = new Headers();
    for (const [k, v] of b.headers) headers.append(k, v);
    res = await fetch(`http://${t.host}:${t.port}${b.target}`, {
      method: b.method,
      headers,
      ...(b.body ? { body: new Uint8Array(b.body) } : {}),
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    // fetch would not send it (a method or header it refuses), or the server
    // broke the connection off mid-body (a 413 answered early): the raw socket
    // sends it and reads whatever answer there is.
    return null;
  }
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  let body: string | null = null;
  if (b.method === 'HEAD') body = null;
  else if (res.status === 200 && (headers['content-type'] ?? '').includes('ndjson')) await res.body?.cancel().catch(() => undefined);
  else body = await res.text().catch(() => null);
  return { status: res.status, headers, body };
}

/** The request's bytes, with the case's damage to its framing or headers. */
export function rawBytes(c: HttpCase, b: Built, t: Target): Buffer {
  const m = c.mutation;
  const nl = m === 'lf-only' ? '\n' : '\r\n';
  let target = b.target;
  if (m === 'absolute-form') target = `http://${t.host}:${t.port}${target}`;
  if (m === 'asterisk-form') target = '*';
  const version = m === 'http10' ? 'HTTP/1.0' : m === 'bad-version' ? 'HTTP/9.9' : 'HTTP/1.1';
  const requestLine = m === 'bad-request-line' ? `${b.method}  ${target}\t${version}` : `${b.method} ${target} ${version}`;
  const lines: Buffer[] = [latin1Bytes(requestLine)];
  const h = (s: string): void => void lines.push(latin1Bytes(s));
  if (m !== 'no-host') h(`Host: ${t.host}:${t.port}`);
  for (const [k, v] of b.headers) h(m === 'space-before-colon' && k === 'content-type' ? `${k} : ${v}` : `${k}: ${v}`);
  const body = b.body ?? Buffer.alloc(0);
  let payload = body;
  const chunked = m === 'cl-and-te' || m === 'chunked-bad';
  if (chunked) {
    h('Transfer-Encoding: chunked');
    if (m === 'cl-and-te') h(`Content-Length: ${body.length}`);
    const size = m === 'chunked-bad' ? 'zz' : body.length.toString(16);
    payload = Buffer.concat([Buffer.from(`${size}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
  } else if (m === 'te-bogus') {
    h('Transfer-Encoding: gzip, identity');
  } else if (b.body !== null || m.startsWith('cl-')) {
    const len = body.length;
    if (m === 'cl-short') h(`Content-Length: ${Math.max(0, len - 1)}`);
    else if (m === 'cl-long') h(`Content-Length: ${len + 10}`);
    else if (m === 'cl-negative') h('Content-Length: -1');
    else if (m === 'cl-nonnumeric') h('Content-Length: 12abc');
    else if (m === 'cl-duplicate') {
      h(`Content-Length: ${len}`);
      h(`Content-Length: ${len + 1}`);
    } else h(`Content-Length: ${len}`);
  }
  if (m === 'huge-header') h(`X-Fuzz: ${'a'.repeat(20_000)}`);
  if (m === 'many-headers') for (let i = 0; i < 2500; i++) h(`x${i}: 1`);
  if (m === 'header-bytes') lines.push(Buffer.concat([Buffer.from('X-Fuzz: a'), Buffer.from([0x01, 0x00, 0x7f]), Buffer.from('b')]));
  if (m === 'header-name-bytes') h('X Fuzz\u00fc: 1');
  if (m === 'obs-fold') h(`X-Fuzz: a${nl}  folded`);
  if (m === 'expect') h('Expect: 100-continue');
  if (m === 'expect-other') h('Expect: x-fuzz');
  const one = (connection: string): Buffer =>
    Buffer.concat([Buffer.concat(lines.flatMap((l) => [l, Buffer.from(nl)])), Buffer.from(`Connection: ${connection}${nl}${nl}`), payload]);
  return m === 'pipelined' ? Buffer.concat([one('keep-alive'), one('close')]) : one('close');
}

/** Writes the bytes and parses every response that comes back before the server closes. */
export function sendRaw(bytes: Buffer, t: Target, method: string, halfClose = false): Promise<{ answers: Answer[]; error: string | null }> {
  return new Promise((resolve) => {
    const socket = connect(t.port, t.host);
    let data = Buffer.alloc(0);
    let error: string | null = null;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const answers = parseResponses(data, method);
      resolve({
        answers,
        error: answers.length
          ? null
          : (error ?? (data.length ? `unparsable answer: ${JSON.stringify(data.subarray(0, 120).toString('latin1'))}` : 'closed without an answer')),
      });
    };
    const timer = setTimeout(() => {
      error = 'timed out';
      finish();
    }, TIMEOUT_MS);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      // A stream that follows a job: its head is all we need.
      const answers = parseResponses(data, method);
      if (answers.some((a) => a.status === 200 && a.body === null && method !== 'HEAD')) finish();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // EPIPE/ECONNRESET after an early answer (413) is the server being done with us.
      error = e.code ?? e.message;
      if (e.code !== 'EPIPE') finish();
    });
    socket.on('close', finish);
    socket.on('connect', () => {
      // No half-close: node's server (httpAllowHalfOpen off) drops a request
      // whose client has ended its side. Only a body promised longer than sent
      // ends the socket, so the server sees it cut short.
      socket.write(bytes, () => {
        if (halfClose) socket.end();
      });
    });
  });
}

/** Every complete response in `data`; interim 1xx skipped; a 200 NDJSON stream counts from its head. */
export function parseResponses(data: Buffer, method: string): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = data.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1]);
    if (!Number.isInteger(status)) break;
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) {
        const k = line.slice(0, i).trim().toLowerCase();
        headers[k] = headers[k] === undefined ? line.slice(i + 1).trim() : `${headers[k]}, ${line.slice(i + 1).trim()}`;
      }
    }
    let next = end + 4;
    if (status < 200) {
      at = next;
      continue;
    }
    if (method === 'HEAD' || status === 204 || status === 304) {
      out.push({ status, headers, body: null });
      at = next;
      continue;
    }
    if (status === 200 && (headers['content-type'] ?? '').includes('ndjson')) {
      out.push({ status, headers, body: null });
      break;
    }
    let body: Buffer | null = null;
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      if (data.length < next + len) break;
      body = data.subarray(next, next + len);
      next += len;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      let p = next;
      let complete = false;
      for (;;) {
        const lineEnd = data.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(data.subarray(p, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          p = lineEnd + 4;
          complete = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
      next = p;
    } else {
      body = data.subarray(next);
      next = data.length;
    }
    out.push({ status, headers, body: body.toString('utf8') });
    at = next;
  }
  return out;
}
