/**
 * A stand-in for the part of GitHub's REST API a GitHub App uses to get an
 * installation token: `POST /app/installations/{id}/access_tokens`. It
 * refuses what GitHub refuses, with GitHub's status codes:
 *
 * - 401 when the App JWT is missing, not RS256, not signed by the App's key,
 *   issued for another App, expired, or valid for more than 10 minutes;
 * - 404 for an installation it does not know;
 * - 422 when a permission is asked for that the installation was not granted
 *   (or at a higher level), or a repository that is not in the installation.
 *
 * It issues a fresh `ghs_` token per request, remembers which repositories
 * (if named) and permissions each one carries, and records every request
 * (never a token). Plain HTTP on 127.0.0.1 (the agent's
 * WARMSTART_GITHUB_API_URL points at it).
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IssuedToken {
  token: string;
  /** repository names the token is limited to; null: every repository of the installation */
  repositories: string[] | null;
  permissions: Record<string, string>;
}

export interface TokenRequest {
  installationId: string;
  status: number;
  /** the request's body, as sent (it holds no secret) */
  body: Record<string, unknown>;
}

export interface GithubApiStandIn {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: TokenRequest[];
  issued: IssuedToken[];
  /** whether `token` was issued and may read `repository` (name) */
  allows(token: string, repository: string): boolean;
  close(): Promise<void>;
}

const LEVEL: Record<string, number> = { read: 1, write: 2, admin: 3 };

function jwtProblem(header: string | undefined, appId: string, key: KeyObject): string | null {
  const m = /^Bearer\s+([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/i.exec(header ?? '');
  if (!m) return 'A JSON web token could not be decoded';
  const [, h, p, sig] = m;
  let head: { alg?: string };
  let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
  try {
    head = JSON.parse(Buffer.from(h!, 'base64url').toString('utf8')) as typeof head;
    claims = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return 'A JSON web token could not be decoded';
  }
  if (head.alg !== 'RS256') return 'A JSON web token could not be decoded';
  if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig!, 'base64url'))) return 'A JSON web token could not be decoded';
  if (String(claims.iss) !== appId) return "'Issuer' claim ('iss') must be an Integer";
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now)
    return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
  if (claims.exp - now > 600 + 60) return "'Expiration time' claim ('exp') is too far in the future";
  if (typeof claims.iat !== 'number' || claims.iat > now + 60)
    return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
  return null;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startGithubApiStandIn(o: {
  appId: string;
  /** the App's public key (PEM), or its private key, whose public half is used */
  key: string;
  installationId: string;
  /** what the installation grants */
  granted: Record<string, 'read' | 'write' | 'admin'>;
  /** repository names the installation covers */
  repositories: string[];
}): Promise<GithubApiStandIn> {
  const publicKey = createPublicKey(o.key);
  const requests: TokenRequest[] = [];
  const issued: IssuedToken[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await readBody(req);
      const send = (status: number, body: Record<string, unknown>): void => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
      };
      const m = /^\/app\/installations\/([^/]+)\/access_tokens$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
      if (req.method !== 'POST' || !m) return send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
      let body: Record<string, unknown> = {};
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        body = { unparsable: true };
      }
      const record = (status: number): void => void requests.push({ installationId: m[1]!, status, body });
      const problem = jwtProblem(req.headers.authorization, o.appId, publicKey);
      if (problem) {
        record(401);
        return send(401, { message: problem, documentation_url: 'https://docs.github.com/rest' });
      }
      if (m[1] !== o.installationId) {
        record(404);
        return send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
      }
      const asked = (body.permissions ?? {}) as Record<string, string>;
      for (const [perm, level] of Object.entries(asked)) {
        const have = o.granted[perm];
        if (!have || (LEVEL[level] ?? 99) > (LEVEL[have] ?? 0)) {
          record(422);
          return send(422, {
            message: 'The permissions requested are not granted to this installation.',
            documentation_url: 'https://docs.github.com/rest',
          });
        }
      }
      const names = Array.isArray(body.repositories) ? (body.repositories as unknown[]).map(String) : null;
      if (names && names.some((n) => !o.repositories.includes(n))) {
        record(422);
        return send(422, {
          message: 'There is at least one repository that does not exist or is not accessible to the parent installation.',
          documentation_url: 'https://docs.github.com/rest',
        });
      }
      const token = `ghs_${randomBytes(18).toString('base64url')}`;
      const permissions = Object.keys(asked).length > 0 ? asked : o.granted;
      issued.push({ token, repositories: names, permissions });
      record(201);
      send(201, {
        token,
        expires_at: new Date(Date.now() + 3_600_000).toISOString(),
        permissions,
        repository_selection: names ? 'selected' : 'all',
      });
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    issued,
    allows: (token, repository) => {
      const t = issued.find((i) => i.token === token);
      if (!t || !t.permissions.contents) return false;
      return t.repositories === null ? o.repositories.includes(repository) : t.repositories.includes(repository);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
