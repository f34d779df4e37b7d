import { cacheRef, parseCacheRegistry } from '../../agent/src/cache/ref.js';
import { parseRepository } from '../../agent/src/workspace/repository.js';

/**
 * The moving cache ref the agent derives for `repository` (a local fixture
 * directory, a URL or owner/repo) under `registry` (`HOST[:PORT][/NAMESPACE]`),
 * from the agent's own function, so tests follow the path rule
 * (agent/src/cache/ref.ts cacheRepository) instead of restating it.
 */
export function expectedCacheRef(registry: string, repository: string, configName?: string | null): string {
  return cacheRef(parseCacheRegistry(registry), parseRepository(repository), configName);
}

/** The registry path (no host, no tag) of a ref, as the registry's HTTP API names it. */
export function registryPath(ref: string): string {
  return ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
}
