/**
 * Image references split in one place. `splitTag`/`withTag` take a ref as
 * the agent writes it (`host[:port]/path[:tag]`; the tag is what follows the
 * last ':' after the last '/'), for the cache refs the agent made
 * (cache/ref.ts checks those) and the refs it pushes. `parsePullRef` splits
 * one the way Docker reads it, so the registry client can ask for the
 * manifest a build would pull: `node:20` is `docker.io/library/node`, tag
 * `20` (the client maps docker.io to its API host); no tag means `latest`;
 * `@sha256:...` is already a digest.
 */
import { registryOfImage } from '../registry/image-credentials.js';

export interface ParsedRef {
  /** registry host[:port], lowercased; `docker.io` for Docker Hub */
  host: string;
  /** `host/path`, as the registry client takes it */
  repository: string;
  /** the tag, or the digest when the reference carries one */
  reference: string;
  /** the digest the reference is pinned to, or null for a tag */
  digest: string | null;
}

/** `repository` (`host[:port]/path`) and `tag` (null when the ref has none) of `host[:port]/path[:tag]`. */
export function splitTag(ref: string): { repository: string; tag: string | null } {
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repository: ref, tag: null };
}

/** The same repository under another tag. */
export function withTag(ref: string, tag: string): string {
  return `${splitTag(ref).repository}:${tag}`;
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

/**
 * Splits `ref` as `docker pull` reads it (unlike cache/ref.ts parseImageRef,
 * which takes only fully qualified cache refs and throws); null when it is
 * not a reference of the docker form (the
 * registry client checks the name rules, so a bad name fails there with a
 * reason). A digest wins over a tag, as with `docker pull`.
 */
export function parsePullRef(ref: string): ParsedRef | null {
  if (ref === '' || /\s/.test(ref)) return null;
  let name = ref;
  let digest: string | null = null;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!DIGEST.test(digest)) return null;
  }
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  let tag = 'latest';
  if (colon > slash) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  if (name === '' || tag === '') return null;
  const host = registryOfImage(name);
  let path = name.toLowerCase().startsWith(`${host}/`) ? name.slice(host.length + 1) : name;
  // Docker Hub's official images live under `library/`.
  if (host === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  return { host, repository: `${host}/${path}`, reference: digest ?? tag, digest };
}

/**
 * Whether a `features` key names an OCI artifact (`ghcr.io/devcontainers/features/node:1`):
 * its first component is a registry host. Local folders (`./x`), tarball
 * URLs and other forms are not.
 */
export function isOciFeature(id: string): boolean {
  if (id.startsWith('./') || id.startsWith('../') || /^[a-z][a-z0-9+.-]*:\/\//i.test(id)) return false;
  const slash = id.indexOf('/');
  if (slash <= 0) return false;
  const first = id.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}
