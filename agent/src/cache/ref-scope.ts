import { WarmstartError } from '../errors.js';
import type { Repository } from '../workspace/repository.js';
import { repositoryIdentity } from './identity.js';
import { cacheRepository, parseImageRef, type CacheRegistry } from './ref.js';

/**
 * Refuses an explicit cache ref that a caller may not push to. A node-scoped
 * caller (the CLI's operator, the API's static token) may name any ref. A
 * workspace-scoped caller may name only its own repository's cache path for
 * the job's registry (agent/src/cache/ref.ts cacheRepository) or a path
 * below it: anything else would let one repository's job write another's
 * cache and exact tags. Throws CACHE_REF_FORBIDDEN.
 */
export function checkExplicitCacheRef(ref: string, o: { scope: 'node' | 'workspace'; registry: CacheRegistry | null; repo: Repository }): void {
  if (o.scope === 'node') return;
  const wanted = parseImageRef(ref).repository;
  const own = o.registry ? cacheRepository(o.registry, o.repo) : null;
  if (own !== null && (wanted === own || wanted.startsWith(`${own}/`))) return;
  throw new WarmstartError(
    'CACHE_REF_FORBIDDEN',
    own === null
      ? `cache ref ${JSON.stringify(wanted)} refused: a workspace-scoped job may only use its own repository's cache path, and no cache registry is configured to derive it`
      : `cache ref ${JSON.stringify(wanted)} refused: a workspace-scoped job may only use ${JSON.stringify(own)} (the cache path of ${repositoryIdentity(o.repo)}) or a path below it`,
  );
}

/**
 * Refuses a cache registry a workspace-scoped caller names on a host the
 * node holds credentials for, unless it is the node's own cache registry,
 * namespace included. Paths are unambiguous only under one namespace: with a
 * namespace of its choosing, a job from a git host named like a namespace
 * component (`ns`) could derive `<registry>/ns/acme/app`, another
 * repository's path under the node's namespace `ns`, and write its moving tag
 * (the layer cache every build of that repository reads). A registry the
 * node holds nothing for is the caller's own business: it only ever gets the
 * credentials it brought. Throws CACHE_REF_FORBIDDEN.
 */
export function checkJobRegistry(
  named: CacheRegistry | null,
  o: { scope: 'node' | 'workspace'; configured: CacheRegistry | null; credentialHosts: readonly string[] },
): void {
  if (o.scope === 'node' || named === null) return;
  const nodeHosts = new Set([...o.credentialHosts, ...(o.configured ? [o.configured.host] : [])]);
  if (!nodeHosts.has(named.host)) return;
  if (o.configured && o.configured.host === named.host && o.configured.namespace === named.namespace) return;
  const configured = o.configured ? `${o.configured.host}${o.configured.namespace ? `/${o.configured.namespace}` : ''}` : 'none';
  throw new WarmstartError(
    'CACHE_REF_FORBIDDEN',
    `cache registry ${JSON.stringify(`${named.host}${named.namespace ? `/${named.namespace}` : ''}`)} refused: on a registry this node holds credentials for, a workspace-scoped job may only use the node's cache registry (${configured})`,
  );
}
