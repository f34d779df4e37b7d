import type { PushResult } from '../../../shared/src/workspace-result.js';
import type { DockerEngine, RegistryAuth } from '../docker/engine.js';
import { describeError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import type { FetchedManifest, OciApi } from '../registry/oci-api.js';
import { relabelInRegistry, type RelabelOptions } from './relabel.js';
import { splitTag } from './image-ref.js';

export interface PushCacheOptions {
  engine: DockerEngine;
  /** the image the dev container runs */
  imageId: string;
  /** the moving ref first; then any other tag of the same image */
  refs: string[];
  /**
   * The exact ref and the labels that say what the image was made for
   * (agent/src/cache/image-labels.ts). The labelled copy is made in the
   * registry (agent/src/cache/relabel.ts) and put under the exact ref and the
   * moving ref both; an image the registry holds as an index is labelled by
   * the engine instead and pushed under the exact ref only.
   */
  exact?: { ref: string; labels: Record<string, string>; contentKey?: string } | null;
  auth: RegistryAuth | undefined;
  /** the same credentials, for the registry calls of the labelling */
  creds?: RegistryCredentials | null;
  /** the agent's registry client for the labelling (agent.ts); absent: a default one */
  oci?: OciApi | undefined;
  /** stands in for relabelInRegistry in unit tests */
  relabel?: (o: RelabelOptions) => Promise<FetchedManifest | null>;
  /**
   * Signs a ref right after its push (agent/src/cache/signature-store.ts),
   * with the exact tag's content key or null; absent: nothing is signed.
   * A failure leaves the image pushed and unsigned, and the result says so.
   */
  sign?: ((ref: string, contentKey: string | null, manifest?: FetchedManifest) => Promise<unknown>) | null;
  /** for all refs together */
  timeoutMs: number;
  now?: () => number;
}

/**
 * Tags the dev container's image with the cache refs and pushes them, one
 * after the other, under one timeout; then labels it in the registry under
 * the exact and moving refs (a config blob and two manifests: the layers are
 * there). Never throws: the outcome is the result, reported for the first
 * (moving) ref.
 */
export async function pushCache(o: PushCacheOptions): Promise<PushResult> {
  const now = o.now ?? (() => performance.now());
  const t0 = now();
  const signal = AbortSignal.timeout(o.timeoutMs);
  const ms = (): number => Math.round(now() - t0);
  const ref = o.refs[0] ?? null;
  const unsigned: string[] = [];
  const notes: string[] = [];
  const sign = async (r: string, contentKey: string | null, manifest?: FetchedManifest): Promise<void> => {
    try {
      await o.sign?.(r, contentKey, manifest);
    } catch (err) {
      unsigned.push(`${r}: ${describeError(err)}`);
    }
  };
  const relabel = o.relabel ?? relabelInRegistry;
  try {
    const pushed: (string | null)[] = [];
    for (const r of o.refs) {
      await o.engine.tagImage(o.imageId, r);
      pushed.push(await o.engine.pushImage(r, o.auth, signal));
      // With an exact ref the moving ref is labelled (and signed) below.
      if (!o.exact || r !== ref) await sign(r, null);
    }
    if (o.exact) {
      const exact = splitTag(o.exact.ref);
      const repository = exact.repository;
      const digest = pushed[0] ?? null;
      const moving = ref === null ? null : splitTag(ref);
      let labelled: FetchedManifest | null = null;
      try {
        labelled =
          digest && moving?.repository === repository && exact.tag && moving.tag
            ? await relabel({
                repository,
                digest,
                labels: o.exact.labels,
                tags: [exact.tag, moving.tag],
                creds: o.creds ?? null,
                ...(o.oci ? { api: o.oci } : {}),
              })
            : null;
      } catch (err) {
        // A registry that took the push but cannot serve its manifest back (a 5xx on reads): the engine labels it, as below.
        if (signal.aborted) throw err;
        notes.push(`labelled through the engine: ${describeError(err)}`);
      }
      if (labelled) {
        // One manifest under both tags: one signature, with the content key, serves both.
        await sign(o.exact.ref, o.exact.contentKey ?? null, labelled);
        // A local exact tag now names an older image (an expired one this start
        // pulled, exact-max-age.ts): drop it, so the node keeps no stale exact
        // tag; the next start here takes the new one from the registry. Losing
        // it is harmless (a tag of an image no container needs), so a failure only leaves it.
        await o.engine.removeImage(o.exact.ref).catch(() => undefined);
      } else {
        if (ref) await sign(ref, null);
        // Tagged straight from the build, so no temporary tag is left to remove;
        // the local exact tag lets this node's next start skip the pull.
        await o.engine.labelImage(o.imageId, o.exact.labels, o.exact.ref);
        await o.engine.pushImage(o.exact.ref, o.auth, signal);
        await sign(o.exact.ref, o.exact.contentKey ?? null);
      }
    }
    const reason = [...notes, ...(unsigned.length > 0 ? [`pushed but not signed: ${unsigned.join('; ')}`] : [])].join('; ') || null;
    return { status: 'pushed', ref, reason, ms: ms() };
  } catch (err) {
    if (signal.aborted) {
      return { status: 'timeout', ref, reason: `push did not finish within ${Math.round(o.timeoutMs / 1000)} s`, ms: ms() };
    }
    return { status: 'failed', ref, reason: describeError(err), ms: ms() };
  }
}
