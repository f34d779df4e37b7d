import { computeContentKey } from '../cache/content-key.js';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { describeError } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { labelMismatch } from '../cache/image-labels.js';
import type { CacheSession } from './cache-phase.js';
import type { PipelineDeps } from './pipeline.js';

/** The exact ref of a config's content, and whether the finished image is here now. */
export interface ExactLookup {
  ref: string;
  /** the full content key, which the pushed exact image is labelled with */
  key: string;
  hit: boolean;
  /** why an image under the exact tag was not used (`CACHE_IDENTITY_MISMATCH: ...`), or null */
  reason: string | null;
}

/** `<repository of the moving ref>:exact-<key>`: the same repository, a tag per content key. */
export function exactRefFor(movingRef: string, key: string): string {
  return `${movingRef.slice(0, movingRef.lastIndexOf(':'))}:exact-${key.slice(0, 40)}`;
}

/**
 * Computes the content key, asks the registry for the exact tag (a manifest
 * HEAD, no pull) and, on a hit, makes the image local and checks that it
 * was made for this repository (`identity`, agent/src/cache/identity.ts) and
 * this key: an image under the tag with other labels, or none, is a miss
 * with a CACHE_IDENTITY_MISMATCH reason. The key is an optimisation: when it
 * cannot be computed the job goes on with the layer cache and pushes no
 * exact tag.
 */
export async function findExact(
  deps: Pick<PipelineDeps, 'engine'>,
  cache: CacheSession,
  movingRef: string,
  discovered: DiscoveredConfig,
  repoDir: string,
  rec: PhaseRecorder,
  identity: string,
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
  if (!digest) return { ref, key, hit: false, reason: null };
  const credentials = await cache.credentials;
  const local = await rec.phase('pull-exact', () => cache.ensureLocal(ref, credentials, digest));
  if (!local.available) {
    rec.note(`exact image listed but not pulled: ${local.reason}`, 'pull-exact');
    return { ref, key, hit: false, reason: null };
  }
  let labels: Record<string, string> | null;
  try {
    labels = (await deps.engine.inspectImage(ref))?.labels ?? null;
  } catch (err) {
    rec.note(`exact image not inspected, so not used: ${describeError(err)}`, 'pull-exact');
    return { ref, key, hit: false, reason: null };
  }
  const mismatch = labelMismatch(labels, identity, key);
  if (mismatch) {
    rec.note(`exact image not used: ${mismatch}`, 'pull-exact');
    return { ref, key, hit: false, reason: mismatch };
  }
  return { ref, key, hit: true, reason: null };
}
