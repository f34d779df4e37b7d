/**
 * A stand-in for the part of GitHub's REST API a GitHub App uses:
 *
 * - `POST /app/installations/{id}/access_tokens` (an installation token),
 * - `GET /app/installations/{id}` (the installation),
 * - `GET /repos/{owner}/{repo}/installation` (which installation covers a
 *   repository).
 *
 * It refuses what GitHub refuses, with GitHub's status codes:
 *
 * - 401 on every route when the App JWT is missing, not RS256, not signed by
 *   the App's key, issued for another App, expired, or valid for more than
 *   10 minutes (an installation token in its place is no JWT either);
 * - 404 for an installation it does not know, and for a repository the
 *   installation does not cover (another account, or not among its
 *   repositories);
 * - 422 when a token is asked with a permission the installation was not
 *   granted (or at a higher level, or an unknown level), or with a
 *   repository that is not in the installation.
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

export interface ApiRequest {
  route: 'create-token' | 'get-installation' | 'get-repo-installation' | 'unknown';
  /** the installation named in the path (create-token, get-installation) */
  installationId?: string;
  /** owner/repo (get-repo-installation) */
  repository?: string;
  status: number;
  /** the request's body, as sent (it holds no secret); {} for a GET */
  body: Record<string, unknown>;
}

export interface GithubApiStandIn {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: ApiRequest[];
  issued: IssuedToken[];
  /** whether `token` was issued and may read `repository` (name) */
  allows(token: string, repository: string): boolean;
  close(): Promise<void>;
}

export interface GithubApiStandInOptions {
  appId: string;
  /** the App's public key (PEM), or its private key, whose public half is used */
  key: string;
  installationId: string;
  /** the account (user or organization login) the App is installed on */
  account: string;
  /** what the installation grants */
  granted: Record<string, 'read' | 'write' | 'admin'>;
  /** repository names (of `account`) the installation covers */
  repositories: string[];
}

const LEVEL: Record<string, number> = { read: 1, write: 2, admin: 3 };
const DOCS = 'https://docs.github.com/rest';

/** Why GitHub would refuse this Authorization header as an App JWT, or null when it accepts it. */
export function jwtProblem(header: string | undefined, appId: string, key: KeyObject): string | null {
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

type Route = { route: ApiRequest['route']; installationId?: string; owner?: string; repo?: string };

function routeOf(method: string | undefined, path: string): Route {
  let m = /^\/app\/installations\/([^/]+)\/access_tokens$/.exec(path);
  if (m && method === 'POST') return { route: 'create-token', installationId: decodeURIComponent(m[1]!) };
  m = /^\/app\/installations\/([^/]+)$/.exec(path);
  if (m && method === 'GET') return { route: 'get-installation', installationId: decodeURIComponent(m[1]!) };
  m = /^\/repos\/([^/]+)\/([^/]+)\/installation$/.exec(path);
  if (m && method === 'GET') return { route: 'get-repo-installation', owner: decodeURIComponent(m[1]!), repo: decodeURIComponent(m[2]!) };
  return { route: 'unknown' };
}

export async function startGithubApiStandIn(o: GithubApiStandInOptions): Promise<GithubApiStandIn> {
  const publicKey = createPublicKey(o.key);
  const requests: ApiRequest[] = [];
  const issued: IssuedToken[] = [];
  const installation = (): Record<string, unknown> => ({
    id: Number(o.installationId),
    app_id: Number(o.appId),
    account: { login: o.account, type: 'Organization' },
    permissions: o.granted,
    repository_selection: 'selected',
  });
  // GitHub logins and repository names are case-insensitive.
  const covers = (owner: string, repo: string): boolean =>
    owner.toLowerCase() === o.account.toLowerCase() && o.repositories.some((r) => r.toLowerCase() === repo.toLowerCase());

  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await readBody(req);
      const send = (status: number, body: Record<string, unknown>): void => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
      };
      const r = routeOf(req.method, new URL(req.url ?? '/', 'http://x').pathname);
      let body: Record<string, unknown> = {};
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        body = { unparsable: true };
      }
      const answer = (status: number, reply: Record<string, unknown>): void => {
        requests.push({
          route: r.route,
          ...(r.installationId !== undefined ? { installationId: r.installationId } : {}),
          ...(r.owner !== undefined ? { repository: `${r.owner}/${r.repo}` } : {}),
          status,
          body,
        });
        send(status, reply);
      };
      if (r.route === 'unknown') return answer(404, { message: 'Not Found', documentation_url: DOCS });
      const problem = jwtProblem(req.headers.authorization, o.appId, publicKey);
      if (problem) return answer(401, { message: problem, documentation_url: DOCS });

      if (r.route === 'get-repo-installation') {
        if (!covers(r.owner!, r.repo!)) return answer(404, { message: 'Not Found', documentation_url: DOCS });
        return answer(200, installation());
      }
      if (r.installationId !== o.installationId) return answer(404, { message: 'Not Found', documentation_url: DOCS });
      if (r.route === 'get-installation') return answer(200, installation());

      const asked = (body.permissions ?? {}) as Record<string, string>;
      for (const [perm, level] of Object.entries(asked)) {
        const have = o.granted[perm];
        if (!have || (LEVEL[level] ?? 99) > (LEVEL[have] ?? 0)) {
          return answer(422, { message: 'The permissions requested are not granted to this installation.', documentation_url: DOCS });
        }
      }
      const names = Array.isArray(body.repositories) ? (body.repositories as unknown[]).map(String) : null;
      if (names && names.some((n) => !covers(o.account, n))) {
        return answer(422, {
          message: 'There is at least one repository that does not exist or is not accessible to the parent installation.',
          documentation_url: DOCS,
        });
      }
      const token = `ghs_${randomBytes(18).toString('base64url')}`;
      const permissions = Object.keys(asked).length > 0 ? asked : o.granted;
      issued.push({ token, repositories: names, permissions });
      answer(201, {
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
