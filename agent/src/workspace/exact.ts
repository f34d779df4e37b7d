import { computeContentKey } from '../cache/content-key.js';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { describeError } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import type { CacheSession } from './cache-phase.js';
import type { PipelineDeps } from './pipeline.js';

/** The exact ref of a config's content, and whether the finished image is here now. */
export interface ExactLookup {
  ref: string;
  hit: boolean;
}

/** `<repository of the moving ref>:exact-<key>`: the same repository, a tag per content key. */
export function exactRefFor(movingRef: string, key: string): string {
  return `${movingRef.slice(0, movingRef.lastIndexOf(':'))}:exact-${key.slice(0, 40)}`;
}

/**
 * Computes the content key, asks the registry for the exact tag (a manifest
 * HEAD, no pull) and, on a hit, makes the image local. The key is an
 * optimisation: when it cannot be computed the job goes on with the layer
 * cache and pushes no exact tag.
 */
export async function findExact(
  deps: Pick<PipelineDeps, 'engine'>,
  cache: CacheSession,
  movingRef: string,
  discovered: DiscoveredConfig,
  repoDir: string,
  rec: PhaseRecorder,
): Promise<ExactLookup | null> {
  let key: string;
  try {
    key = await rec.phase('key', async () => (await computeContentKey({ discovered, repoDir, platform: await deps.engine.platform() })).key);
  } catch (err) {
    rec.note(`no content key, so no exact tag: ${describeError(err)}`, 'key');
    return null;
  }
  const ref = exactRefFor(movingRef, key);
  const digest = await rec.phase('exact-lookup', () => cache.lookup(ref));
  if (!digest) return { ref, hit: false };
  const credentials = await cache.credentials;
  const local = await rec.phase('pull-exact', () => cache.ensureLocal(ref, credentials, digest));
  if (!local.available) {
    rec.note(`exact image listed but not pulled: ${local.reason}`, 'pull-exact');
    return { ref, hit: false };
  }
  return { ref, hit: true };
}
