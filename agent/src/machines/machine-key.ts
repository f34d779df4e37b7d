/**
 * The key of the provisioned-image cache: what a provisioned machine is made
 * of, hashed. Two `machine up` calls share a cached image exactly when their
 * keys match.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { WarmstartError } from '../errors.js';

/** A file copied into the machine before the provision script runs. */
export interface MachineFile {
  /** absolute path inside the machine */
  path: string;
  content: Buffer;
}

/** Everything a provisioned machine is made from. */
export interface MachineKeyInput {
  backend: string;
  /** the image the machine starts from before provisioning */
  base: string;
  /** the provision script's bytes; absent means no script (which is not the same as an empty one) */
  provisionScript?: Buffer;
  files: MachineFile[];
}

/** Bumped whenever the description changes shape, so old keys can never match new ones. */
const DESCRIPTION_VERSION = 1;

/**
 * sha256 (64 hex digits) over a canonical, versioned JSON description: the
 * backend, the base, the sha256 of the script and of each file's content,
 * files sorted by path. Any byte change in any input changes the key; the
 * order in which files are listed does not. The script's own file name does
 * not count: renaming it provisions the same machine.
 */
export function machineKey(input: MachineKeyInput): string {
  const files = normalizeFiles(input.files).map((f) => [f.path, sha256(f.content)]);
  const description = {
    v: DESCRIPTION_VERSION,
    backend: input.backend,
    base: input.base,
    provision: input.provisionScript === undefined ? null : sha256(input.provisionScript),
    files,
  };
  return sha256(Buffer.from(JSON.stringify(description), 'utf8'));
}

/**
 * Checks and normalises the file list: absolute POSIX paths (`/etc//a` and
 * `/etc/a` are one file), no duplicates, sorted by path byte-wise (not by
 * locale, which differs between hosts). Throws INVALID_ARGUMENT.
 */
export function normalizeFiles(files: MachineFile[]): MachineFile[] {
  const out = files.map((f) => {
    if (!path.posix.isAbsolute(f.path) || f.path.includes('\0')) {
      const shown = JSON.stringify(f.path);
      throw new WarmstartError('INVALID_ARGUMENT', `file destination must be an absolute path in the machine: ${shown}`);
    }
    const p = path.posix.normalize(f.path).replace(/\/+$/, '');
    if (p === '') throw new WarmstartError('INVALID_ARGUMENT', 'file destination cannot be /');
    return { path: p, content: f.content };
  });
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 1; i < out.length; i++) {
    if (out[i]?.path === out[i - 1]?.path) {
      throw new WarmstartError('INVALID_ARGUMENT', `file destination listed twice: ${out[i]?.path}`);
    }
  }
  return out;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
