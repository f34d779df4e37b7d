import { readFileSync } from 'node:fs';
import { WarmstartError } from '../errors.js';

/** PEM certificate chain and key for fastify's `https` option. */
export interface TlsOptions {
  cert: Buffer;
  key: Buffer;
}

/**
 * TLS from `WARMSTART_TLS_CERT_FILE` / `WARMSTART_TLS_KEY_FILE`, or null for
 * plain HTTP. One without the other is a configuration error, not a silent
 * fallback to HTTP.
 */
export function tlsOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  readFile: (path: string) => Buffer = (p) => readFileSync(p),
): TlsOptions | null {
  const certFile = env['WARMSTART_TLS_CERT_FILE'];
  const keyFile = env['WARMSTART_TLS_KEY_FILE'];
  if (!certFile && !keyFile) return null;
  if (!certFile || !keyFile) {
    throw new WarmstartError('INVALID_ARGUMENT', 'set both WARMSTART_TLS_CERT_FILE and WARMSTART_TLS_KEY_FILE, or neither');
  }
  const read = (name: string, file: string): Buffer => {
    try {
      return readFile(file);
    } catch (err) {
      throw new WarmstartError('INVALID_ARGUMENT', `cannot read ${name} ${file}`, {
        cause: err,
        detail: (err as { code?: string }).code ?? String(err),
      });
    }
  };
  return { cert: read('WARMSTART_TLS_CERT_FILE', certFile), key: read('WARMSTART_TLS_KEY_FILE', keyFile) };
}
