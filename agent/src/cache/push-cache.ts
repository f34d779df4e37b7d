import type { PushResult } from '../../../shared/src/workspace-result.js';
import type { DockerEngine, RegistryAuth } from '../docker/engine.js';
import { describeError } from '../errors.js';

export interface PushCacheOptions {
  engine: DockerEngine;
  /** the image the dev container runs */
  imageId: string;
  ref: string;
  auth: RegistryAuth | undefined;
  timeoutMs: number;
  now?: () => number;
}

/**
 * Tags the dev container's image with the cache ref and pushes it under a
 * timeout. Never throws: the outcome is the result.
 */
export async function pushCache(o: PushCacheOptions): Promise<PushResult> {
  const now = o.now ?? (() => performance.now());
  const t0 = now();
  const signal = AbortSignal.timeout(o.timeoutMs);
  const ms = (): number => Math.round(now() - t0);
  try {
    await o.engine.tagImage(o.imageId, o.ref);
    await o.engine.pushImage(o.ref, o.auth, signal);
    return { status: 'pushed', ref: o.ref, reason: null, ms: ms() };
  } catch (err) {
    if (signal.aborted) {
      return { status: 'timeout', ref: o.ref, reason: `push did not finish within ${Math.round(o.timeoutMs / 1000)} s`, ms: ms() };
    }
    return { status: 'failed', ref: o.ref, reason: describeError(err), ms: ms() };
  }
}
