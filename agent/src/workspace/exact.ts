import { computeContentKey, readDockerfile } from '../cache/content-key.js';
import { tooOld } from '../cache/exact-max-age.js';
import { pinnedKey, pinTargets, resolvePins, type PinOutcome } from '../cache/pinned-inputs.js';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { describeError } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { labelMismatch } from '../cache/image-labels.js';
import type { CacheSession } from './cache-phase.js';
import type { PipelineDeps } from './deps.js';
import { withTag } from '../cache/image-ref.js';

/** The exact ref of a config's content, and whether the finished image is here now. */
export interface ExactLookup {
  ref: string;
  /** the full content key, which the pushed exact image is labelled with */
  key: string;
  hit: boolean;
  /** why an image under the exact tag was not used (`CACHE_IDENTITY_MISMATCH: ...`), or null */
  reason: string | null;
  /** on a hit, the local name of the image to run when it is not `ref` (the moving image, by digest) */
  image?: string;
  /**
   * set when the hit is the moving image, decided from the registry while its
   * pull may still be running: its labels (read from its config there) and
   * the pull, which `up` may join before it has ended
   */
  fromMoving?: { labels: Record<string, string> };
}

/** No exact lookup for this job: an input behind a moving tag could not be pinned (why: `reason`). */
export interface NoExactKey {
  ref: null;
  key: null;
  hit: false;
  reason: string;
}

/** `<repository of the moving ref>:exact-<key>`: the same repository, a tag per content key. */
export function exactRefFor(movingRef: string, key: string): string {
  return withTag(movingRef, `exact-${key.slice(0, 40)}`);
}

/**
 * Computes the content key and, at the same time, pins the Dockerfile's base
 * images and the remote features to the digests their tags name now
 * (agent/src/cache/pinned-inputs.ts); the exact key is both together, so a
 * moved tag is a miss. Then asks the registry for the exact tag (a manifest
 * HEAD, no pull) and, on a hit, makes the image local and checks that it
 * was made for this repository (`identity`, agent/src/cache/identity.ts) and
 * this key: an image under the tag with other labels, or none, is a miss
 * with a CACHE_IDENTITY_MISMATCH reason; one older than
 * WARMSTART_EXACT_MAX_AGE a miss with EXACT_IMAGE_EXPIRED. The key is an
 * optimisation: when it cannot be computed the job goes on with the layer
 * cache and pushes no exact tag (null, or {@link NoExactKey} with the reason
 * when a pin failed).
 */
export async function findExact(
  deps: Pick<PipelineDeps, 'engine' | 'registry' | 'config'>,
  cache: CacheSession,
  movingRef: string,
  discovered: DiscoveredConfig,
  repoDir: string,
  rec: PhaseRecorder,
  identity: string,
): Promise<ExactLookup | NoExactKey | null> {
  // Started first: the HEADs overlap the hashing of the build context.
  const pinned = rec.phase('pin', () => pinInputs(deps, cache, discovered, repoDir));
  pinned.catch(() => undefined); // observed by whoever awaits it; never left unhandled
  let content: string;
  try {
    content = await rec.phase('key', async () => (await computeContentKey({ discovered, repoDir, platform: await deps.engine.platform() })).key);
  } catch (err) {
    rec.note(`no content key, so no exact tag: ${describeError(err)}`, 'key');
    return null;
  }
  const pins = await pinned;
  if (pins.pins === null) {
    const reason = `no exact lookup: ${pins.reason}`;
    rec.note(reason, 'pin');
    return { ref: null, key: null, hit: false, reason };
  }
  if (pins.pins.length > 0) rec.note(`pinned ${pins.pins.map((p) => `${p.ref}@${p.digest.slice(0, 19)}…`).join(', ')}`, 'pin');
  const key = pinnedKey(content, pins.pins);
  const ref = exactRefFor(movingRef, key);
  // The moving tag is usually the newest exact image (push-cache.ts labels both alike); its pull began at t=0.
  const moving = await rec.phase('exact-from-moving', () => cache.movingAsExact(identity, key, deps.config.exactMaxAgeMs));
  if (moving) {
    rec.note(`the moving image is the exact image for this key (${moving.digest.slice(0, 19)}…): no second lookup or pull`, 'exact-from-moving');
    return { ref, key, hit: true, reason: null, image: moving.image, fromMoving: { labels: moving.labels } };
  }
  const digest = await rec.phase('exact-lookup', () => cache.lookup(ref));
  if (!digest) return { ref, key, hit: false, reason: null };
  rec.note(`${ref} is in the registry (${digest.slice(0, 19)}…)`, 'exact-lookup');
  const credentials = await cache.credentials;
  const local = await rec.phase('pull-exact', () => cache.ensureTrusted(ref, credentials, digest, key));
  if (!local.available) {
    rec.note(`exact image listed but not pulled: ${local.reason}`, 'pull-exact');
    // An unsigned image (WARMSTART_CACHE_TRUSTED_KEYS) is the reason worth showing, as a label mismatch is.
    return { ref, key, hit: false, reason: local.refused ? local.reason : null };
  }
  let image: { labels: Record<string, string>; createdAt: string | null } | null;
  try {
    image = await deps.engine.inspectImage(ref);
  } catch (err) {
    rec.note(`exact image not inspected, so not used: ${describeError(err)}`, 'pull-exact');
    return { ref, key, hit: false, reason: null };
  }
  // The image's Created is when its exact tag was made (push-cache.ts labels a copy at push time).
  const refused = labelMismatch(image?.labels ?? null, identity, key) ?? tooOld(image?.createdAt ?? null, deps.config.exactMaxAgeMs);
  if (refused) {
    rec.note(`exact image not used: ${refused}`, 'pull-exact');
    return { ref, key, hit: false, reason: refused };
  }
  return { ref, key, hit: true, reason: null };
}

/** The pins of a config's moving inputs, each asked of its own registry with the credentials bound to it. */
async function pinInputs(
  deps: Pick<PipelineDeps, 'registry'>,
  cache: CacheSession,
  discovered: DiscoveredConfig,
  repoDir: string,
): Promise<PinOutcome> {
  try {
    const { text, buildArgs } = await readDockerfile(discovered, repoDir);
    const { targets, reason } = pinTargets(text, buildArgs, discovered.config.features);
    if (reason !== null) return { pins: null, reason };
    return await resolvePins({ registry: deps.registry, credentialsFor: (host) => cache.credentialsFor(host) }, targets);
  } catch (err) {
    return { pins: null, reason: describeError(err) };
  }
}
