/**
 * The result's `cache`, decided in one place (workspace/cache-outcome.ts):
 * each path a start can take, as the job reports its facts in order. The
 * integration tests show the same answers on a real engine and registry
 * (exact-hit, cache-trouble, config-variants, buildkit-node); these show
 * every rule in milliseconds.
 */
import { describe, expect, it } from 'vitest';
import { CacheOutcome } from '../../../agent/src/workspace/cache-outcome.js';

const MOVING = '127.0.0.1:5000/ns/acme/app:devcontainer-cache';
const BK = '127.0.0.1:5000/ns/acme/app:buildkit-devcontainer-cache';
const EXACT = '127.0.0.1:5000/ns/acme/app:exact-0123';

describe('CacheOutcome', () => {
  it("no cache in play: disabled with the plan's reason, ref as planned", () => {
    expect(new CacheOutcome(null, 'no cache registry configured').result()).toEqual({
      ref: null,
      hit: 'disabled',
      reason: 'no cache registry configured',
      stepsCached: null,
      stepsTotal: null,
    });
  });

  it("layers: the builder's ref, the moving image given to the build, the steps counted", () => {
    const o = new CacheOutcome(MOVING, null);
    o.usesRef(BK);
    o.layerSource({ available: true, reason: null }, { ref: EXACT, reason: null }, false);
    o.steps({ stepsCached: 12, stepsTotal: 13 });
    expect(o.result()).toEqual({ ref: BK, hit: 'layers', reason: null, stepsCached: 12, stepsTotal: 13 });
  });

  it("miss: the exact refusal is the reason when there was an exact key, else the moving pull's", () => {
    const withKey = new CacheOutcome(MOVING, null);
    withKey.layerSource(
      { available: false, reason: 'CACHE_IMAGE_MISSING: not in the registry' },
      { ref: EXACT, reason: 'CACHE_IDENTITY_MISMATCH: labels name another repository' },
      false,
    );
    expect(withKey.result()).toMatchObject({ hit: 'miss', reason: 'CACHE_IDENTITY_MISMATCH: labels name another repository' });
    const noKey = new CacheOutcome(MOVING, null);
    noKey.layerSource(
      { available: false, reason: 'REGISTRY_UNREACHABLE: connection refused' },
      { ref: null, reason: 'base image could not be pinned' },
      false,
    );
    expect(noKey.result()).toMatchObject({ hit: 'miss', reason: 'REGISTRY_UNREACHABLE: connection refused' });
    const layersButExactRefused = new CacheOutcome(MOVING, null);
    layersButExactRefused.layerSource({ available: true, reason: null }, { ref: EXACT, reason: 'EXACT_IMAGE_EXPIRED: 40 days old' }, true);
    // An expired exact image is remade by a full rebuild: the layers are not given to it.
    expect(layersButExactRefused.result()).toMatchObject({ hit: 'miss', reason: 'EXACT_IMAGE_EXPIRED: 40 days old' });
  });

  it('exact: the finished image, no step counts even when the CLI printed some', () => {
    const o = new CacheOutcome(MOVING, null);
    o.exactImage(EXACT);
    o.steps({ stepsCached: 0, stepsTotal: 2 });
    o.importFailed(MOVING, 'ignored');
    expect(o.result()).toEqual({ ref: EXACT, hit: 'exact', reason: null, stepsCached: null, stepsTotal: null });
  });

  it('the exact image could not be pulled after all: back to the moving ref, then decided as a build', () => {
    const o = new CacheOutcome(MOVING, null);
    o.exactImage(EXACT);
    o.exactFellThrough(MOVING);
    o.layerSource({ available: false, reason: 'REGISTRY_ERROR: pull failed' }, { ref: EXACT, reason: null }, false);
    o.steps({ stepsCached: 0, stepsTotal: 13 });
    expect(o.result()).toEqual({ ref: MOVING, hit: 'miss', reason: 'REGISTRY_ERROR: pull failed', stepsCached: 0, stepsTotal: 13 });
  });

  it('BuildKit could not read the cache: a layers answer becomes a miss with its words; a miss stays as it was', () => {
    const o = new CacheOutcome(BK, null);
    o.layerSource({ available: true, reason: null }, null, false);
    o.importFailed(BK, 'failed to fetch manifest: 503');
    expect(o.result()).toMatchObject({ hit: 'miss', reason: `CACHE_IMPORT_FAILED: BuildKit could not read ${BK}: failed to fetch manifest: 503` });
    const miss = new CacheOutcome(BK, null);
    miss.layerSource({ available: false, reason: 'CACHE_IMAGE_MISSING' }, null, false);
    miss.importFailed(BK, 'x');
    expect(miss.result()).toMatchObject({ hit: 'miss', reason: 'CACHE_IMAGE_MISSING' });
  });

  it('nothing built (lightweight, no config) drops the ref; an image or compose config keeps it, disabled with why', () => {
    const light = new CacheOutcome(MOVING, null);
    light.nothingBuilt('lightweight workspace: nothing is built');
    expect(light.result()).toMatchObject({ ref: null, hit: 'disabled', reason: 'lightweight workspace: nothing is built' });
    const image = new CacheOutcome(MOVING, null);
    image.buildsNothing('an image config: nothing is built');
    expect(image.result()).toMatchObject({ ref: MOVING, hit: 'disabled', reason: 'an image config: nothing is built' });
  });

  it('hands out copies: a result taken early does not change later', () => {
    const o = new CacheOutcome(MOVING, null);
    const early = o.result();
    o.layerSource({ available: true, reason: null }, null, false);
    expect(early.hit).toBe('disabled');
    expect(o.result().hit).toBe('layers');
  });
});
