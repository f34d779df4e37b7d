/**
 * The cache-signing settings (agent/src/cache/signature.ts), read at start-up
 * so a key that cannot be used stops the agent instead of silently leaving
 * its pushes unsigned or its starts trusting everything.
 */
import { readFileSync } from 'node:fs';
import { parseSigningKey, parseTrustedKey, type SigningKey, type TrustedKey } from '../cache/signature.js';
import { WarmstartError } from '../errors.js';

export interface SigningConfig {
  /** WARMSTART_CACHE_SIGNING_KEY_FILE: sign every cache image this node pushes */
  cacheSigningKey: SigningKey | null;
  /** WARMSTART_CACHE_TRUSTED_KEYS: when set, only images signed by one of these are used; null: no check */
  cacheTrustedKeys: TrustedKey[] | null;
}

function read(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new WarmstartError('INVALID_ARGUMENT', `${setting}: cannot read ${file}`, { detail: (err as NodeJS.ErrnoException).code ?? 'read failed' });
  }
}

/** Comma-separated files, blanks ignored. */
export function keyFiles(raw: string): string[] {
  return raw
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
}

export function signingConfigFromEnv(env: NodeJS.ProcessEnv): SigningConfig {
  const keyFile = env.WARMSTART_CACHE_SIGNING_KEY_FILE?.trim() || null;
  let cacheSigningKey: SigningKey | null = null;
  if (keyFile) {
    try {
      cacheSigningKey = parseSigningKey(read('WARMSTART_CACHE_SIGNING_KEY_FILE', keyFile));
    } catch (err) {
      if (err instanceof WarmstartError) throw err;
      // The message names the file and the problem, never the key's bytes.
      throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_CACHE_SIGNING_KEY_FILE: ${keyFile} is ${(err as Error).message}`);
    }
  }
  const rawTrusted = env.WARMSTART_CACHE_TRUSTED_KEYS;
  if (rawTrusted === undefined || rawTrusted.trim() === '') return { cacheSigningKey, cacheTrustedKeys: null };
  const byId = new Map<string, TrustedKey>();
  for (const file of keyFiles(rawTrusted)) {
    let key: TrustedKey;
    try {
      key = parseTrustedKey(read('WARMSTART_CACHE_TRUSTED_KEYS', file), file);
    } catch (err) {
      if (err instanceof WarmstartError) throw err;
      throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_CACHE_TRUSTED_KEYS: ${file}: ${(err as Error).message}`);
    }
    if (!byId.has(key.keyId)) byId.set(key.keyId, key);
  }
  if (byId.size === 0) throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_CACHE_TRUSTED_KEYS names no key file');
  return { cacheSigningKey, cacheTrustedKeys: [...byId.values()] };
}
