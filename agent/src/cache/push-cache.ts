import type { PushResult } from '../../../shared/src/workspace-result.js';
import type { DockerEngine, RegistryAuth } from '../docker/engine.js';
import { describeError } from '../errors.js';

export interface PushCacheOptions {
  engine: DockerEngine;
  /** the image the dev container runs */
  imageId: string;
  /** the moving ref first; then any other tag of the same image */
  refs: string[];
  /**
   * The exact ref, pushed last as a copy of the image that carries `labels`
   * (agent/src/cache/image-labels.ts): the moving ref stays the image itself,
   * so the layer cache sees what it always did.
   */
  exact?: { ref: string; labels: Record<string, string>; contentKey?: string } | null;
  auth: RegistryAuth | undefined;
  /**
   * Signs a ref right after its push (agent/src/cache/signature-store.ts),
   * with the exact tag's content key or null; absent: nothing is signed.
   * A failure leaves the image pushed and unsigned, and the result says so.
   */
  sign?: ((ref: string, contentKey: string | null) => Promise<unknown>) | null;
  /** for all refs together */
  timeoutMs: number;
  now?: () => number;
}

/**
 * Tags the dev container's image with the cache refs and pushes them, one
 * after the other, under one timeout; then the labelled exact image (its
 * push uploads a config and a manifest: the layers are there). Never throws: the outcome is the result,
 * reported for the first (moving) ref.
 */
export async function pushCache(o: PushCacheOptions): Promise<PushResult> {
  const now = o.now ?? (() => performance.now());
  const t0 = now();
  const signal = AbortSignal.timeout(o.timeoutMs);
  const ms = (): number => Math.round(now() - t0);
  const ref = o.refs[0] ?? null;
  const unsigned: string[] = [];
  const sign = async (r: string, contentKey: string | null): Promise<void> => {
    try {
      await o.sign?.(r, contentKey);
    } catch (err) {
      unsigned.push(`${r}: ${describeError(err)}`);
    }
  };
  try {
    for (const r of o.refs) {
      await o.engine.tagImage(o.imageId, r);
      await o.engine.pushImage(r, o.auth, signal);
      await sign(r, null);
    }
    if (o.exact) {
      // Tagged straight from the build, so no temporary tag is left to remove;
      // the local exact tag lets this node's next start skip the pull.
      await o.engine.labelImage(o.imageId, o.exact.labels, o.exact.ref);
      await o.engine.pushImage(o.exact.ref, o.auth, signal);
      await sign(o.exact.ref, o.exact.contentKey ?? null);
    }
    const reason = unsigned.length > 0 ? `pushed but not signed: ${unsigned.join('; ')}` : null;
    return { status: 'pushed', ref, reason, ms: ms() };
  } catch (err) {
    if (signal.aborted) {
      return { status: 'timeout', ref, reason: `push did not finish within ${Math.round(o.timeoutMs / 1000)} s`, ms: ms() };
    }
    return { status: 'failed', ref, reason: describeError(err), ms: ms() };
  }
}
