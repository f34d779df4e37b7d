/**
 * The cached images of `machine up`, as images on the backend whose names
 * start with `warmstart-cache-`: the backend's own image store is the cache
 * index, so nothing on the host can drift from it.
 */
import type { MachineImage, SnapshotBackend } from '../backends/backend.js';
import { isWarmstartError, WarmstartError } from '../errors.js';

export const CACHE_IMAGE_PREFIX = 'warmstart-cache-';

/** Image properties written on every cached image. */
export const CACHE_PROPERTIES = {
  key: 'dev.warmstart.cache-key',
  base: 'dev.warmstart.base',
  backend: 'dev.warmstart.backend',
  /** `present` or `absent`: whether git is in the image, so a hit's post-launch hook knows without asking the machine */
  git: 'dev.warmstart.git',
  /** comma-separated paths the image writes at each launch from the launch's files (machine-up.ts "Launch files") */
  launchFiles: 'dev.warmstart.launch-files',
} as const;

/** The cached image of a key: its first 16 hex digits (64 bits: collisions are not a concern at cache sizes). */
export function cacheImageName(key: string): string {
  return `${CACHE_IMAGE_PREFIX}${key.slice(0, 16)}`;
}

/** The cached images, newest first (unknown creation times last). */
export async function cacheList(backend: SnapshotBackend): Promise<MachineImage[]> {
  const images = await backend.listImages(CACHE_IMAGE_PREFIX);
  return images.sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? ''));
}

/** Options of {@link cachePrune}. */
export interface CachePruneOptions {
  /** how many of the newest cached images to keep; default 0 (remove all) */
  keep?: number;
}

/** Removes cached images beyond the `keep` newest; machines launched from them are not affected. */
export async function cachePrune(backend: SnapshotBackend, opts: CachePruneOptions = {}): Promise<{ removed: string[]; kept: string[] }> {
  const keep = opts.keep ?? 0;
  if (!Number.isInteger(keep) || keep < 0) {
    throw new WarmstartError('INVALID_ARGUMENT', `keep must be a whole number ≥ 0, got ${keep}`);
  }
  const images = await cacheList(backend);
  const kept = images.slice(0, keep).map((i) => i.name);
  const removed: string[] = [];
  for (const img of images.slice(keep)) {
    // gone meanwhile (another prune): the outcome asked for all the same
    await backend.removeImage(img.name).catch((err: unknown) => {
      if (!isWarmstartError(err, 'IMAGE_NOT_FOUND')) throw err;
    });
    removed.push(img.name);
  }
  return { removed, kept };
}
