/**
 * A real git smart-HTTP server over HTTPS for tests: `git http-backend` run as
 * CGI behind node:https, with a self-signed certificate made at start-up and
 * HTTP Basic auth (user `x-access-token`, password = the token given). It
 * records every request's method, path and auth verdict, never the token.
 */
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';

/** What the server saw of one request. */
export interface GitHttpRequest {
  method: string;
  /** URL path, without the query */
  path: string;
  query: string;
  /** `none`: no Authorization header; `wrong`: present but not the token; `ok`: the token */
  auth: 'none' | 'wrong' | 'ok';
  /** HTTP status sent back */
  status: number;
}

export interface GitHttpsServer {
  /** `https://127.0.0.1:<port>` (no trailing slash); repos are `<url>/<owner>/<name>.git` */
  url: string;
  /** PEM file of the self-signed certificate: point GIT_SSL_CAINFO at it */
  caFile: string;
  close(): Promise<void>;
  requests: GitHttpRequest[];
}

export const GIT_HTTP_USER = 'x-access-token';

/** Fails with a clear message when a tool the server needs is missing. */
async function need(cmd: string, args: string[]): Promise<void> {
  const r = await execa(cmd, args, { reject: false });
  if (r.failed) throw new Error(`git-https-server needs \`${cmd}\` (${[cmd, ...args].join(' ')} failed: ${r.shortMessage})`);
}

/** A self-signed certificate for 127.0.0.1 (its own CA), in a fresh temp dir. */
async function makeCertificate(): Promise<{ dir: string; keyFile: string; certFile: string }> {
  await need('openssl', ['version']);
  const dir = await mkdtemp(join(tmpdir(), 'warmstart-git-https-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  // prettier-ignore
  await execa('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', keyFile, '-out', certFile,
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { dir, keyFile, certFile };
}

/** Whether a password (token) given for a request path is accepted; a fixed token, or a check of one's own. */
export type GitTokenCheck = string | ((given: string, path: string) => boolean);

function authOf(req: IncomingMessage, token: GitTokenCheck, path: string): GitHttpRequest['auth'] {
  const header = req.headers.authorization;
  if (!header) return 'none';
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return 'wrong';
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'wrong';
  const user = decoded.slice(0, colon);
  if (typeof token === 'function') return user === GIT_HTTP_USER && token(decoded.slice(colon + 1), path) ? 'ok' : 'wrong';
  const given = Buffer.from(decoded.slice(colon + 1));
  const want = Buffer.from(token);
  const same = given.length === want.length && timingSafeEqual(given, want);
  return user === GIT_HTTP_USER && same ? 'ok' : 'wrong';
}

/** Splits a CGI response into its header block and body; null if there is no blank line. */
function splitCgi(out: Buffer): { headers: [string, string][]; body: Buffer } | null {
  const crlf = out.indexOf('\r\n\r\n');
  const lf = out.indexOf('\n\n');
  let end: number;
  let sep: number;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) [end, sep] = [crlf, 4];
  else if (lf >= 0) [end, sep] = [lf, 2];
  else return null;
  const headers = out
    .subarray(0, end)
    .toString('latin1')
    .split(/\r?\n/)
    .filter((l) => l.includes(':'))
    .map((l): [string, string] => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]);
  return { headers, body: out.subarray(end + sep) };
}

/** Runs `git http-backend` for one request, as CGI. */
function runBackend(req: IncomingMessage, res: ServerResponse, projectRoot: string, pathInfo: string, query: string): Promise<number> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: projectRoot,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      PATH_INFO: pathInfo,
      QUERY_STRING: query,
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: GIT_HTTP_USER,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = String(req.headers['content-length']);
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);

    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => undefined); // backend may exit before reading everything
    req.pipe(child.stdin);
    const fail = (why: string): void => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`git http-backend failed: ${why}\n`);
      resolve(500);
    };
    child.on('error', (e) => fail(e.message));
    child.on('close', (code) => {
      const parsed = splitCgi(Buffer.concat(out));
      if (!parsed) return fail(`exit ${code}, no CGI header block; stderr: ${Buffer.concat(err).toString('utf8').slice(-500)}`);
      let status = 200;
      const headers: Record<string, string> = {};
      for (const [k, v] of parsed.headers) {
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10) || 500;
        else headers[k] = v;
      }
      headers['Content-Length'] = String(parsed.body.length);
      res.writeHead(status, headers);
      res.end(parsed.body);
      resolve(status);
    });
  });
}

/**
 * Starts the server on 127.0.0.1, a free port. `projectRoot` holds bare repos
 * as `<owner>/<name>.git` (see {@link addBareRepo}).
 */
export async function startGitHttpsServer(o: { projectRoot: string; token: GitTokenCheck }): Promise<GitHttpsServer> {
  if (o.token.length === 0) throw new Error('startGitHttpsServer needs a non-empty token');
  await need('git', ['--version']);
  const cert = await makeCertificate();
  const requests: GitHttpRequest[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer({ key: await readFile(cert.keyFile), cert: await readFile(cert.certFile) }, (req, res) => {
    const full = new URL(req.url ?? '/', 'https://127.0.0.1');
    const entry: GitHttpRequest = {
      method: req.method ?? '?',
      path: full.pathname,
      query: full.search.replace(/^\?/, ''),
      auth: authOf(req, o.token, full.pathname),
      status: 0,
    };
    requests.push(entry);
    if (entry.auth !== 'ok') {
      req.resume();
      entry.status = 401;
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    let pathInfo: string;
    try {
      pathInfo = decodeURIComponent(full.pathname);
    } catch {
      entry.status = 400;
      res.writeHead(400).end();
      return;
    }
    void runBackend(req, res, o.projectRoot, pathInfo, entry.query).then((s) => {
      entry.status = s;
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closed = false;
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: cert.certFile,
    requests,
    async close() {
      if (closed) return;
      closed = true;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await done;
      await rm(cert.dir, { recursive: true, force: true });
    },
  };
}

/** `git clone --bare <source> <projectRoot>/<owner>/<name>.git`; returns the bare repo's path. */
export async function addBareRepo(source: string, projectRoot: string, owner: string, name: string): Promise<string> {
  const dest = join(projectRoot, owner, `${name}.git`);
  await mkdir(dirname(dest), { recursive: true });
  await execa('git', ['clone', '--quiet', '--bare', '--', source, dest]);
  return dest;
}
