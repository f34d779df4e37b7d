import type { JWTPayload } from 'jose';

/** JWTs signed by the control plane, checked against its published keys. */
export interface JwtAuthOptions {
  /** `WARMSTART_JWKS_URL`: where the signing keys are published (fetched and cached by jose). */
  jwksUrl: string | URL;
  /** `WARMSTART_JWT_AUDIENCE`: the `aud` this agent accepts. */
  audience: string;
  /** `WARMSTART_JWT_ISSUER`: the `iss` this agent accepts. */
  issuer: string;
  /** Accepted `alg`s; default: any the key allows (jose never accepts `none`). */
  algorithms?: string[];
  /** Clock skew allowed on `exp` / `nbf`, in seconds. Default 0. */
  clockToleranceSeconds?: number;
}

/** Verifies a JWT's signature, expiry, audience and issuer; rejects with jose's error otherwise. */
export type JwtVerifier = (token: string) => Promise<JWTPayload>;

export function createJwtVerifier(options: JwtAuthOptions): JwtVerifier {
  const jwksUrl = new URL(options.jwksUrl);
  // jose is loaded with the first token, not with the agent: a node without JWT auth never loads it.
  let verify: Promise<JwtVerifier> | null = null;
  const load = async (): Promise<JwtVerifier> => {
    const { createRemoteJWKSet, jwtVerify } = await import('jose');
    const keys = createRemoteJWKSet(jwksUrl);
    return async (token) => {
      const { payload } = await jwtVerify(token, keys, {
        audience: options.audience,
        issuer: options.issuer,
        // jwtVerify checks exp only when present; a token without one would never expire.
        requiredClaims: ['exp'],
        ...(options.algorithms ? { algorithms: options.algorithms } : {}),
        ...(options.clockToleranceSeconds ? { clockTolerance: options.clockToleranceSeconds } : {}),
      });
      return payload;
    };
  };
  return async (token) => (await (verify ??= load()))(token);
}

/** A JWS compact serialisation: three base64url parts. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}
