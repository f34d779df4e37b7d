/**
 * What the result's `cache` says, decided in one place. The job tells it
 * what happened, in order; each rule of how a fact changes the answer is a
 * method here, and `result()` is the answer so far (whatever the job's exit:
 * ready, recovery, failed).
 *
 * - `disabled` with the plan's reason until a cache is in play.
 * - A lightweight workspace or a repository without a config builds
 *   nothing: `disabled`, no ref.
 * - Started from the finished image: `exact`, its ref, no step counts.
 * - A config that builds nothing (an image, compose): `disabled`, with why.
 * - A Dockerfile build: `layers` when the moving image could be given to it
 *   (and the build is not a refresh of an expired exact image), else `miss`.
 *   The reason shown is the exact image's refusal when there was an exact
 *   key (the layers may still have served), else the moving pull's.
 * - BuildKit's own word wins: it could not read the cache → `miss` with
 *   CACHE_IMPORT_FAILED.
 */
import type { CacheResult } from '../../../shared/src/workspace-result.js';

export class CacheOutcome {
  private r: CacheResult;

  constructor(ref: string | null, offReason: string | null) {
    this.r = { ref, hit: 'disabled', reason: offReason, stepsCached: null, stepsTotal: null };
  }

  /** The builder's own moving ref (cache/ref.ts builderRef). */
  usesRef(ref: string): void {
    this.r.ref = ref;
  }

  /** Lightweight, or no config: nothing is built, no cache is used. */
  nothingBuilt(reason: string): void {
    this.r = { ...this.r, ref: null, hit: 'disabled', reason };
  }

  /** The finished image was started. */
  exactImage(ref: string): void {
    this.r = { ref, hit: 'exact', reason: null, stepsCached: null, stepsTotal: null };
  }

  /** The exact image taken from the moving pull could not be pulled after all: the build goes on from `movingRef`. */
  exactFellThrough(movingRef: string | null): void {
    this.r = { ...this.r, ref: movingRef };
  }

  /** The config builds nothing (an image or compose config): a cache image would go unused. */
  buildsNothing(note: string | null): void {
    this.r = { ...this.r, hit: 'disabled', reason: note };
  }

  /** A Dockerfile build with the moving image as its layer source (or not). */
  layerSource(
    moving: { available: boolean; reason: string | null },
    exact: { ref: string | null; reason: string | null } | null,
    refresh: boolean,
  ): void {
    const reason = exact?.ref ? (exact.reason ?? moving.reason) : (moving.reason ?? exact?.reason ?? null);
    this.r = { ...this.r, hit: moving.available && !refresh ? 'layers' : 'miss', reason };
  }

  /** How many build steps came from the cache (not for an exact start: nothing was built). */
  steps(counted: { stepsCached: number; stepsTotal: number }): void {
    if (this.r.hit === 'exact') return;
    this.r = { ...this.r, ...counted };
  }

  /** BuildKit could not read the cache it was given. */
  importFailed(ref: string, error: string): void {
    if (this.r.hit !== 'layers') return;
    this.r = { ...this.r, hit: 'miss', reason: `CACHE_IMPORT_FAILED: BuildKit could not read ${ref}: ${error}` };
  }

  result(): CacheResult {
    return { ...this.r };
  }
}
