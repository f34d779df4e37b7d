/**
 * Per-registry certificates as dockerd reads them from
 * `/etc/docker/certs.d/<host[:port]>/` (WARMSTART_DOCKER_CERTS_DIR in
 * agent/src/config/agent-config.ts): every `*.crt` is an extra CA for that
 * registry (beside the usual roots), every `*.cert` is a client certificate
 * whose key is the `*.key` of the same name. A pair missing its other half
 * is refused, as dockerd refuses it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WarmstartError } from '../errors.js';

export const DEFAULT_CERTS_DIR = '/etc/docker/certs.d';

/** What one registry's directory holds. */
export interface HostCertificates {
  /** the directory read */
  dir: string;
  /** PEM text of each `*.crt`, in file-name order */
  ca: string[];
  /** each `*.cert` and its `*.key` (PEM), in file-name order */
  clientPairs: { cert: string; key: string; name: string }[];
}

/**
 * Reads `<certsDir>/<host>/`; null when that directory does not exist or
 * holds none of these files. Throws REGISTRY_ERROR for a half pair or a file
 * it cannot read, naming the file (never its content).
 */
export async function readHostCertificates(certsDir: string, host: string): Promise<HostCertificates | null> {
  // host[:port] as a single path segment: nothing that climbs out of certsDir.
  if (!/^[a-z0-9.:[\]-]+$/i.test(host) || host.includes('..')) return null;
  const dir = join(certsDir, host);
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new WarmstartError('REGISTRY_ERROR', `cannot read the certificates for ${host} in ${dir}`, { detail: code ?? 'read failed' });
  }
  const has = new Set(names);
  const out: HostCertificates = { dir, ca: [], clientPairs: [] };
  for (const name of names) {
    if (name.endsWith('.crt')) out.ca.push(await read(dir, name, host));
    else if (name.endsWith('.cert')) {
      const key = `${name.slice(0, -'.cert'.length)}.key`;
      if (!has.has(key)) throw halfPair(host, dir, `client certificate ${name} has no key ${key} (a CA certificate must end in .crt)`);
      out.clientPairs.push({ name, cert: await read(dir, name, host), key: await read(dir, key, host) });
    } else if (name.endsWith('.key')) {
      const cert = `${name.slice(0, -'.key'.length)}.cert`;
      if (!has.has(cert)) throw halfPair(host, dir, `key ${name} has no client certificate ${cert}`);
    }
  }
  return out.ca.length > 0 || out.clientPairs.length > 0 ? out : null;
}

async function read(dir: string, name: string, host: string): Promise<string> {
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch (err) {
    throw new WarmstartError('REGISTRY_ERROR', `cannot read ${join(dir, name)} (certificates for ${host})`, {
      detail: (err as NodeJS.ErrnoException).code ?? 'read failed',
    });
  }
}

function halfPair(host: string, dir: string, what: string): WarmstartError {
  return new WarmstartError('REGISTRY_ERROR', `certificates for ${host} in ${dir}: ${what}`);
}
