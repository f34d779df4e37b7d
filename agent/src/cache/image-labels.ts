/**
 * Labels an exact-hit image carries: which repository (agent/src/cache/identity.ts)
 * and which content key it was pushed for. Anyone who can push to the cache
 * path can put an image under an `exact-<key>` tag, and the key needs only a
 * repository's public files; the labels let a start refuse an image that was
 * not made for it (agent/src/workspace/exact.ts).
 */
export const REPOSITORY_LABEL = 'dev.warmstart.repository';
export const CONTENT_KEY_LABEL = 'dev.warmstart.content-key';

/** Which builder made the image (agent/src/cache/ref.ts builderRef): for people reading the registry; starts do not rely on it. */
export const BUILDER_LABEL = 'dev.warmstart.builder';

export function exactImageLabels(identity: string, key: string, builder?: string): Record<string, string> {
  return { [REPOSITORY_LABEL]: identity, [CONTENT_KEY_LABEL]: key, ...(builder ? { [BUILDER_LABEL]: builder } : {}) };
}

/** Why an image's labels do not match the repository and key it is wanted for; null when they do. */
export function labelMismatch(labels: Record<string, string> | null, identity: string, key: string): string | null {
  const got = (name: string): string => {
    const value = labels?.[name];
    return value === undefined ? 'no label' : JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  };
  if (labels?.[REPOSITORY_LABEL] !== identity) {
    return `CACHE_IDENTITY_MISMATCH: the exact image is labelled ${REPOSITORY_LABEL}=${got(REPOSITORY_LABEL)}, not ${JSON.stringify(identity)}`;
  }
  if (labels[CONTENT_KEY_LABEL] !== key) {
    return `CACHE_IDENTITY_MISMATCH: the exact image is labelled ${CONTENT_KEY_LABEL}=${got(CONTENT_KEY_LABEL)}, not ${JSON.stringify(key)}`;
  }
  return null;
}
