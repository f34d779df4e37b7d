import { builderRef, cacheRef, parseCacheRegistry, type Builder } from '../../agent/src/cache/ref.js';
import { parseRepository } from '../../agent/src/workspace/repository.js';

/**
 * The moving cache ref the agent derives for `repository` (a local fixture
 * directory, a URL or owner/repo) under `registry` (`HOST[:PORT][/NAMESPACE]`),
 * from the agent's own function, so tests follow the path rule
 * (agent/src/cache/ref.ts cacheRepository) instead of restating it; on a
 * BuildKit node, that builder's own tag (builderRef).
 */
export function expectedCacheRef(registry: string, repository: string, configName?: string | null, builder: Builder = 'classic'): string {
  return builderRef(cacheRef(parseCacheRegistry(registry), parseRepository(repository), configName), builder);
}

/** The registry path (no host, no tag) of a ref, as the registry's HTTP API names it. */
export function registryPath(ref: string): string {
  return ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
}
