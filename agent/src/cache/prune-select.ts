/**
 * Which exact tags retention removes from one registry repository, decided
 * from what the registry lists (agent/src/cache/prune-run.ts does the
 * listing and deleting). A registry deletes a manifest by digest, and with it
 * every tag pointing at that digest, so a digest is deleted only when no tag
 * that stays points at it.
 */
import { signedDigestOf } from './signature-store.js';

export interface TagInfo {
  tag: string;
  digest: string;
  /** the image config's `created`, for exact tags; null when unknown */
  created: Date | null;
}

export interface PrunePolicy {
  /** keep this many newest exact tags per repository; null: no count limit */
  keep: number | null;
  /** remove exact tags older than this many ms; null: no age limit */
  olderThanMs: number | null;
  now: Date;
}

export interface PruneDecision {
  /** digests to delete: `tags` go with each, its signature tag (if any) is deleted after it */
  remove: { digest: string; tags: string[]; created: Date | null; why: 'beyond-keep' | 'older-than'; signatureTag: TagInfo | null }[];
  /** exact tags the policy would remove but that stay, and why */
  spared: { tag: string; why: string }[];
}

export const EXACT_TAG = /^exact-/;

/**
 * The decision for one repository. `inUse` holds tags a workspace on this
 * node runs from. Moving tags (anything not `exact-…`) are never removed;
 * an exact tag of unknown age counts as the newest and never as old.
 */
export function selectPrune(tags: readonly TagInfo[], policy: PrunePolicy, inUse: ReadonlySet<string>): PruneDecision {
  const exact = tags.filter((t) => EXACT_TAG.test(t.tag));
  const newestFirst = [...exact].sort(
    (a, b) => (b.created?.getTime() ?? Infinity) - (a.created?.getTime() ?? Infinity) || a.tag.localeCompare(b.tag),
  );
  const why = new Map<string, 'beyond-keep' | 'older-than'>();
  newestFirst.forEach((t, i) => {
    if (policy.olderThanMs !== null && t.created !== null && policy.now.getTime() - t.created.getTime() > policy.olderThanMs)
      why.set(t.tag, 'older-than');
    else if (policy.keep !== null && i >= policy.keep) why.set(t.tag, 'beyond-keep');
  });
  const spared: PruneDecision['spared'] = [];
  for (const t of exact) {
    if (why.has(t.tag) && inUse.has(t.tag)) {
      why.delete(t.tag);
      spared.push({ tag: t.tag, why: 'a workspace on this node runs from it' });
    }
  }
  // Every tag that stays (moving, other, kept or spared exact; signatures aside) protects its digest.
  const staying = new Map<string, string>();
  for (const t of tags) if (!why.has(t.tag) && signedDigestOf(t.tag) === null) staying.set(t.digest, t.tag);
  const byDigest = new Map<string, TagInfo[]>();
  for (const t of exact) {
    if (!why.has(t.tag)) continue;
    const keeper = staying.get(t.digest);
    if (keeper !== undefined) {
      why.delete(t.tag);
      spared.push({ tag: t.tag, why: `its digest is also tagged ${keeper}, which stays` });
      continue;
    }
    byDigest.set(t.digest, [...(byDigest.get(t.digest) ?? []), t]);
  }
  const signatures = new Map(tags.flatMap((t) => (signedDigestOf(t.tag) ? [[signedDigestOf(t.tag)!, t] as const] : [])));
  const remove = [...byDigest].map(([digest, group]) => ({
    digest,
    tags: group.map((t) => t.tag).sort(),
    created: group[0]!.created,
    why: group.some((t) => why.get(t.tag) === 'older-than') ? ('older-than' as const) : ('beyond-keep' as const),
    signatureTag: signatures.get(digest) ?? null,
  }));
  return { remove, spared };
}
