import { readFileSync } from 'node:fs';
import { secretSetting } from '../config/secret-setting.js';
import { WarmstartError } from '../errors.js';
import type { AuthOptions } from './auth.js';

type ReadFile = (path: string) => string;

/**
 * Auth settings from the environment: `WARMSTART_API_TOKEN_FILE`, and/or
 * `WARMSTART_JWKS_URL` with `WARMSTART_JWT_AUDIENCE` and
 * `WARMSTART_JWT_ISSUER`. The token is read once, here. With neither set the
 * result is a `bearer` option with nothing to check, which buildServer
 * refuses: there is no way to run the daemon open by accident.
 */
export function authOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, readFile: ReadFile = (p) => readFileSync(p, 'utf8')): AuthOptions {
  const options: Extract<AuthOptions, { mode: 'bearer' }> = { mode: 'bearer' };
  // WARMSTART_API_TOKEN_FILE (as the installer writes it), the value itself, or a systemd credential (config/secret-setting.ts).
  const token = secretSetting(env, 'WARMSTART_API_TOKEN', readFile)?.trim() ?? null;
  if (token !== null) {
    if (token.length < 16) throw new WarmstartError('INVALID_ARGUMENT', 'the API token is shorter than 16 characters');
    options.token = token;
  }
  const jwksUrl = env['WARMSTART_JWKS_URL'];
  if (jwksUrl) {
    const audience = env['WARMSTART_JWT_AUDIENCE'];
    const issuer = env['WARMSTART_JWT_ISSUER'];
    if (!audience || !issuer) {
      throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_JWKS_URL needs WARMSTART_JWT_AUDIENCE and WARMSTART_JWT_ISSUER');
    }
    if (!URL.canParse(jwksUrl) || !/^https?:$/.test(new URL(jwksUrl).protocol)) {
      throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_JWKS_URL is not an http(s) URL: ${jwksUrl}`);
    }
    options.jwt = { jwksUrl, audience, issuer };
  }
  // A configuration error (exit 2), found before the daemon touches anything on the node.
  if (!options.token && !options.jwt) {
    throw new WarmstartError('INVALID_ARGUMENT', 'no API authentication configured: set WARMSTART_API_TOKEN_FILE or WARMSTART_JWKS_URL');
  }
  return options;
}
