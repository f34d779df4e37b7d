import { createHash } from 'node:crypto';
import { WarmstartError } from '../errors.js';
import { hostComponent, remoteHost } from './identity.js';
import { parseHostPort, type Repository } from '../workspace/repository.js';
import { splitTag, withTag } from './image-ref.js';

/** Where cache images live: a registry host (with port) and an optional namespace path. */
export interface CacheRegistry {
  host: string;
  namespace: string | null;
}

/** The parts of a fully qualified image reference. */
export interface ImageRef {
  /** `<registryHost>/<path>`, without tag or digest */
  repository: string;
  registryHost: string;
  path: string;
  tag: string | null;
  digest: string | null;
}

const BASE_TAG = 'devcontainer-cache';
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const TAG_MAX = 128;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;
// Docker refuses repository names longer than this.
const REPOSITORY_MAX = 255;
const BLANK_OR_CONTROL = /[\s\u0000-\u001f\u007f-\u009f]/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

function shortHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 8);
}

function quote(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}…` : value);
}

/**
 * Parses a configured cache registry, `HOST[:PORT][/NAMESPACE...]`. The
 * namespace is lowercased rather than refused, since owners are commonly
 * written with capitals (GitHub) while OCI paths must be lowercase.
 * Throws INVALID_REGISTRY.
 */
export function parseCacheRegistry(value: string): CacheRegistry {
  const invalid: (why: string) => never = (why) => {
    throw new WarmstartError('INVALID_REGISTRY', `Invalid cache registry ${quote(value)}: ${why}.`);
  };
  if (typeof value !== 'string' || value.length === 0) invalid('it must not be empty');
  if (BLANK_OR_CONTROL.test(value)) invalid('it must not contain whitespace or control characters');
  if (SCHEME.test(value)) invalid('drop the scheme (e.g. https://); write HOST[:PORT][/NAMESPACE]');

  const slash = value.indexOf('/');
  const hostText = slash < 0 ? value : value.slice(0, slash);
  // One trailing '/' is a harmless habit; an empty component elsewhere is not.
  const namespaceText = slash < 0 ? '' : value.slice(slash + 1).replace(/\/$/, '');
  if (parseHostPort(hostText) === null) {
    invalid('the host must be a DNS name, an IPv4 address or [IPv6], with an optional port');
  }
  if (namespaceText === '') return { host: hostText.toLowerCase(), namespace: null };

  const components = namespaceText.toLowerCase().split('/');
  for (const component of components) {
    if (!PATH_COMPONENT.test(component)) {
      invalid(`namespace component ${quote(component)} must be lowercase letters and digits, ` + "separated by '.', '_', '__' or '-'");
    }
  }
  return { host: hostText.toLowerCase(), namespace: components.join('/') };
}

/**
 * The moving cache tag for a devcontainer config: `devcontainer-cache`, or
 * `devcontainer-cache-<c>` with `c` the config name made tag-safe.
 *
 * Names that differ only in characters replaced by `-` (e.g. `a b` and
 * `a-b`) share a tag. That is accepted: both are the same config to a
 * human, and hashing them apart would make the common readable tag (e.g.
 * `python 3.12` → `devcontainer-cache-python-3.12`) unreadable.
 */
export function cacheTag(configName?: string | null): string {
  if (configName === undefined || configName === null || configName === '') return BASE_TAG;
  const sanitized = configName
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  // Nothing readable left (e.g. a name in another script): a hash keeps
  // distinct names apart and away from the plain default tag.
  if (sanitized === '') return `${BASE_TAG}-${shortHash(configName)}`;

  const tag = `${BASE_TAG}-${sanitized}`;
  if (tag.length <= TAG_MAX) return tag;
  // Hash the original name, not the cut, so names sharing a long prefix differ.
  const suffix = `-${shortHash(configName)}`;
  const head = tag.slice(0, TAG_MAX - suffix.length).replace(/[-.]+$/, '');
  return `${head}${suffix}`;
}

/**
 * Makes one repository path component OCI-valid: lowercase, other
 * characters to `-`, separator runs that OCI does not allow collapsed to `-`.
 */
function ociComponent(text: string): string {
  const component = text
    .toLowerCase()
    // A run of foreign characters becomes one '-', so `App (v2)` reads
    // `app-v2`; valid runs such as `a--b` are kept so `a--b` and `a-b` stay apart.
    .replace(/[^a-z0-9._-]+/g, '-')
    // OCI allows exactly '.', '_', '__' or a run of '-' between alphanumerics.
    .replace(/[._-]+/g, (run) => (/^(?:\.|_|__|-+)$/.test(run) ? run : '-'))
    .replace(/^[._-]+|[._-]+$/g, '');
  // A name with nothing usable left still needs a stable, valid component.
  return component === '' ? shortHash(text) : component;
}

/**
 * The image repository cache images of `repo` are pushed to, all lowercase,
 * one per repository identity (agent/src/cache/identity.ts):
 * `<host>[/<namespace>]/<owner>/<name>` for GitHub,
 * `<host>[/<namespace>]/<git host>/<owner>/<name>` for any other git host,
 * `<host>[/<namespace>]/local/<hash>/<owner>/<name>` for a local path (the
 * hash of the absolute path keeps two checkouts with the same last two
 * directory names apart). The three forms have 2, 3 and 4 components under
 * the namespace, so none can name another's repository.
 * Throws INVALID_CACHE_REF if the result is longer than registries accept.
 */
export function cacheRepository(registry: CacheRegistry, repo: Repository): string {
  const parts = [registry.host.toLowerCase()];
  if (registry.namespace) parts.push(registry.namespace.toLowerCase());
  if (repo.kind === 'local') parts.push('local', shortHash(repo.cloneUrl));
  else if (!repo.isGitHub) {
    const { host, port } = remoteHost(repo);
    parts.push(hostComponent(host, port));
  }
  parts.push(ociComponent(repo.owner), ociComponent(repo.name));
  const repository = parts.join('/');
  if (repository.length > REPOSITORY_MAX) {
    throw new WarmstartError(
      'INVALID_CACHE_REF',
      `Cache repository ${quote(repository)} is longer than ${REPOSITORY_MAX} characters; use a shorter registry namespace.`,
    );
  }
  return repository;
}

/** Which builder a node's `docker build` reaches: the classic one, or BuildKit through the buildx plugin. */
export type Builder = 'classic' | 'buildkit';

const BUILDKIT_PREFIX = 'buildkit-';

/**
 * The moving ref a builder reads and writes. Neither builder can use the
 * other's image as layer cache (BuildKit reads the inline cache metadata the
 * classic builder never writes; the classic builder matches history lines
 * BuildKit writes differently), so in a fleet that mixes them one shared tag
 * would be overwritten, start after start, with an image the next node
 * cannot use. The classic builder keeps the tag as it is; BuildKit's gets a
 * `buildkit-` prefix (no config name's tag starts with it: they all start
 * with `devcontainer-cache`), cut to 128 characters with a hash like
 * {@link cacheTag}. Exact tags stay shared: a finished image runs the same
 * whichever builder made it.
 */
export function builderRef(movingRef: string, builder: Builder): string {
  if (builder === 'classic') return movingRef;
  const { tag: moving } = splitTag(movingRef);
  const tag = `${BUILDKIT_PREFIX}${moving ?? 'latest'}`;
  if (tag.length <= TAG_MAX) return withTag(movingRef, tag);
  const suffix = `-${shortHash(tag)}`;
  return withTag(movingRef, `${tag.slice(0, TAG_MAX - suffix.length).replace(/[-.]+$/, '')}${suffix}`);
}

/** The moving cache ref for a repository and config: `<cacheRepository>:<cacheTag>`. */
export function cacheRef(registry: CacheRegistry, repo: Repository, configName?: string | null): string {
  return `${cacheRepository(registry, repo)}:${cacheTag(configName)}`;
}

/**
 * Parses a fully qualified image reference
 * (`host[:port]/path[:tag][@algo:hex]`). Refs without a registry host are
 * refused: Docker would silently send them to Docker Hub, and a cache ref
 * must say where it lives. Throws INVALID_CACHE_REF.
 */
export function parseImageRef(ref: string): ImageRef {
  const invalid: (why: string) => never = (why) => {
    throw new WarmstartError('INVALID_CACHE_REF', `Invalid image reference ${quote(ref)}: ${why}.`);
  };
  if (typeof ref !== 'string' || ref.length === 0) invalid('it must not be empty');
  if (BLANK_OR_CONTROL.test(ref)) invalid('it must not contain whitespace or control characters');
  if (SCHEME.test(ref)) invalid('drop the scheme (e.g. https://)');

  let rest = ref;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) invalid('the digest must look like sha256:<hex>');
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest)) {
      invalid('a sha256 digest has 64 lowercase hex characters');
    }
  }

  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash < 0 || !(first.includes('.') || first.includes(':') || first === 'localhost')) {
    invalid('it must start with a registry host (e.g. ghcr.io/owner/repo or localhost:5000/repo)');
  }
  if (parseHostPort(first) === null) {
    invalid('the registry host must be a DNS name, an IPv4 address or [IPv6], with an optional port');
  }

  let path = rest.slice(slash + 1);
  let tag: string | null = null;
  // After the host, the only ':' left can be the tag separator.
  const colon = path.lastIndexOf(':');
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) invalid("the tag must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'");
  }

  const components = path.split('/');
  for (const component of components) {
    if (component !== component.toLowerCase()) invalid('the repository path must be lowercase');
    if (!PATH_COMPONENT.test(component)) {
      invalid(`path component ${quote(component)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'`);
    }
  }
  const repository = `${first}/${path}`;
  if (repository.length > REPOSITORY_MAX) invalid(`the repository name is longer than ${REPOSITORY_MAX} characters`);
  return { repository, registryHost: first, path, tag, digest };
}

/** Inputs to {@link resolveCacheRef}. */
export interface ResolveCacheRefOptions {
  /** An explicit ref from the job or the operator; wins over `registry`. */
  cacheRef?: string;
  registry?: CacheRegistry | null;
  repo: Repository;
  configName?: string | null;
}

/**
 * Decides the cache ref for a workspace: an explicit ref wins (given the
 * config's tag when it has none); else one derived from the registry; else
 * null, meaning no cache. Explicit refs must be tags, not digests, because
 * the cache ref is also where the new image is pushed.
 */
export function resolveCacheRef(opts: ResolveCacheRefOptions): string | null {
  if (opts.cacheRef !== undefined) {
    const parsed = parseImageRef(opts.cacheRef);
    if (parsed.digest !== null) {
      throw new WarmstartError(
        'INVALID_CACHE_REF',
        `Invalid cache ref ${quote(opts.cacheRef)}: a cache ref is pushed to, so it must use a tag, not a digest.`,
      );
    }
    return `${parsed.repository}:${parsed.tag ?? cacheTag(opts.configName)}`;
  }
  if (opts.registry) return cacheRef(opts.registry, opts.repo, opts.configName);
  return null;
}
