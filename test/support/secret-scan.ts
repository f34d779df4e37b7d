import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';

/**
 * The secret audit's scanner: every form a secret can take (raw, base64 at
 * any alignment, inside `user:secret`), searched for in places that are
 * opened all the way down (gzip, `docker save` tar → layer tars → files).
 * Hits name the place, the needle and the offset, never the bytes.
 */

/** `ghs_` + 36 alphanumerics, like a GitHub installation token. */
export function fakeToken(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return `ghs_${[...randomBytes(36)].map((b) => alphabet[b % alphabet.length]).join('')}`;
}

export interface Needle {
  name: string;
  bytes: Buffer;
}
export interface Place {
  name: string;
  bytes: Buffer;
}
export interface Hit {
  place: string;
  needle: string;
  offset: number;
}

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
const b64url = (s: string): string => b64(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/**
 * The part of base64(<k bytes> + secret + ...) fixed by the secret alone, for
 * each alignment k: it is in ANY base64 text that encodes the secret
 * somewhere inside it (docker's `auth` of `user:password`, a Basic header...).
 */
function base64Cores(secret: string): string[] {
  const s = Buffer.from(secret);
  return [0, 1, 2].map((k) => {
    const text = Buffer.concat([Buffer.alloc(k, 0), s]).toString('base64');
    const start = k === 0 ? 0 : 4;
    const end = (k + s.length) % 3 === 0 ? text.length : text.length - 4;
    return text.slice(start, end);
  });
}

/** Every form of a secret we look for; `user` adds the `user:secret` forms (docker auth, HTTP Basic). */
export function needlesFor(label: string, secret: string, user?: string): Needle[] {
  const n = (name: string, v: string): Needle => ({ name: `${label} ${name}`, bytes: Buffer.from(v) });
  const out = [n('raw', secret), n('base64', b64(secret)), n('base64url', b64url(secret))];
  base64Cores(secret).forEach((core, k) => out.push(n(`base64 core@${k}`, core)));
  if (user !== undefined) {
    out.push(n(`raw ${user}:…`, `${user}:${secret}`), n(`base64(${user}:…)`, b64(`${user}:${secret}`)));
  }
  for (const x of out) if (x.bytes.length < 16) throw new Error(`needle ${x.name} is too short to mean anything`);
  return out;
}

/** Hits of every needle in every place; reports names and offsets, never the bytes. */
export function scan(places: Place[], needles: Needle[]): Hit[] {
  const hits: Hit[] = [];
  for (const p of places) {
    for (const n of needles) {
      const at = p.bytes.indexOf(n.bytes);
      if (at >= 0) hits.push({ place: p.name, needle: n.name, offset: at });
    }
  }
  return hits;
}

const isGzip = (b: Buffer): boolean => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
const isTar = (b: Buffer): boolean => b.length >= 512 && b.subarray(257, 262).toString('latin1') === 'ustar';

/**
 * Places from one blob: the blob itself (gunzipped when gzip), and when it is
 * a tar archive, every regular file in it, extracted, recursively (a `docker
 * save` tar holds layer tars holding files).
 */
export async function placesFromBlob(name: string, raw: Buffer, scratch: string, depth = 0): Promise<Place[]> {
  const bytes = isGzip(raw) ? gunzipSync(raw) : raw;
  const places: Place[] = [{ name: isGzip(raw) ? `${name} (gunzipped)` : name, bytes }];
  if (isGzip(raw)) places.push({ name: `${name} (gzip bytes)`, bytes: raw });
  if (isTar(bytes) && depth < 4) {
    const dir = await mkdtemp(join(scratch, 'x-'));
    const r = await execa('tar', ['-x', '-f', '-', '-C', dir, '--no-same-owner', '--no-same-permissions'], {
      input: bytes,
      reject: false,
    });
    if (r.exitCode !== 0 && !String(r.stderr).includes('Cannot mknod')) throw new Error(`tar -x of ${name}: ${r.stderr}`);
    places.push(...(await placesFromTree(dir, `${name}!`, scratch, depth + 1)));
  }
  return places;
}

/** Every regular file under dir (symlinks not followed), each archive opened as above. */
export async function placesFromTree(dir: string, prefix: string, scratch: string, depth = 0): Promise<Place[]> {
  const places: Place[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) places.push(...(await placesFromBlob(`${prefix}${relative(dir, full)}`, await readFile(full), scratch, depth)));
    }
  };
  await walk(dir);
  return places;
}
