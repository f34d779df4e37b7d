import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { apiError } from './http-error.js';
import { createJwtVerifier, looksLikeJwt, type JwtAuthOptions } from './jwt.js';

/**
 * How callers of the API prove who they are. `bearer` accepts the static
 * token, a JWT, or either when both are set; at least one must be.
 * `none` exists for tests only: buildServer refuses to start without auth
 * unless it is asked for by name.
 */
export type AuthOptions =
  | { mode: 'none' }
  | {
      mode: 'bearer';
      /** The shared token (from `WARMSTART_API_TOKEN_FILE`, trimmed). */
      token?: string;
      jwt?: JwtAuthOptions;
    };

/** Who made the request. A JWT with a `workspace` claim may only touch that workspace. */
export type Principal = { kind: 'none' } | { kind: 'token' } | { kind: 'jwt'; subject?: string; workspace?: string };

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook before anything else runs. */
    principal: Principal | null;
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null for anything else. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header ?? '');
  return match?.[1] ?? null;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares in constant time: equal-length digests, so neither length nor prefix leaks. */
export function tokenMatches(candidate: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(candidate), expected);
}

const JWKS_TROUBLE = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);

function isPublic(request: FastifyRequest): boolean {
  return (request.routeOptions.url === '/health' || request.routeOptions.url === '/readyz') && request.method === 'GET';
}

/** Refuses with 403 when the principal is scoped to another workspace. */
export function assertWorkspaceScope(principal: Principal | null, workspaceId: string): void {
  if (principal?.kind === 'jwt' && principal.workspace !== undefined && principal.workspace !== workspaceId) {
    throw apiError('FORBIDDEN', 'the token is not valid for this workspace');
  }
}

/** Checks the bearer token of every request but `GET /health` (an onRequest hook). */
export function createAuthHook(options: AuthOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  if (options.mode === 'none') {
    return async (request) => {
      request.principal = { kind: 'none' };
    };
  }
  if (options.mode !== 'bearer' || (!options.token && !options.jwt)) {
    throw new Error('auth: set an API token file or a JWKS URL (or mode "none" in tests)');
  }
  const expected = options.token ? digest(options.token) : null;
  const verifyJwt = options.jwt ? createJwtVerifier(options.jwt) : null;

  return async (request) => {
    if (isPublic(request)) return;
    // Never log the token or the header: only what went wrong.
    const token = bearerToken(request.headers.authorization);
    if (token === null) throw apiError('UNAUTHENTICATED', 'a bearer token is required');
    if (expected && tokenMatches(token, expected)) {
      request.principal = { kind: 'token' };
      return;
    }
    if (verifyJwt && looksLikeJwt(token)) {
      const claims = await verifyJwt(token).catch((err: unknown) => {
        const e = err as { code?: string; message?: string };
        // The key set could not be fetched: our problem, not the caller's.
        const ours = e.code === undefined || JWKS_TROUBLE.has(e.code);
        request.log[ours ? 'warn' : 'info']({ reason: e.code ?? 'error', detail: e.message }, 'JWT refused');
        return null;
      });
      if (claims) {
        const workspace = claims['workspace'];
        if (workspace !== undefined && typeof workspace !== 'string') {
          throw apiError('FORBIDDEN', 'the token has a workspace claim that is not a string');
        }
        request.principal = {
          kind: 'jwt',
          ...(claims.sub !== undefined ? { subject: claims.sub } : {}),
          ...(workspace !== undefined ? { workspace } : {}),
        };
        const id = (request.params as Record<string, unknown> | undefined)?.['id'];
        if (typeof id === 'string') assertWorkspaceScope(request.principal, id);
        return;
      }
    }
    throw apiError('UNAUTHENTICATED', 'the bearer token is not valid');
  };
}
