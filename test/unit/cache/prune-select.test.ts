import { describe, expect, it } from 'vitest';
import { selectPrune, type TagInfo } from '../../../agent/src/cache/prune-select.js';
import { signatureTag } from '../../../agent/src/cache/signature-store.js';

const DAY = 86_400_000;
const now = new Date('2026-12-01T00:00:00Z');
const d = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const exact = (n: number, ageDays: number | null, digest = d(n)): TagInfo => ({
  tag: `exact-${String(n).padStart(40, '0')}`,
  digest,
  created: ageDays === null ? null : new Date(now.getTime() - ageDays * DAY),
});
const removedTags = (r: ReturnType<typeof selectPrune>): string[] => r.remove.flatMap((x) => x.tags).sort();

describe('prune selection', () => {
  const five = [exact(1, 1), exact(2, 2), exact(3, 3), exact(4, 4), exact(5, 5)];
  const moving: TagInfo = { tag: 'devcontainer-cache', digest: d(100), created: null };

  it('keeps the newest N exact tags and never a moving tag', () => {
    const r = selectPrune([moving, ...five], { keep: 2, olderThanMs: null, now }, new Set());
    expect(removedTags(r)).toEqual([exact(3, 0).tag, exact(4, 0).tag, exact(5, 0).tag]);
    expect(r.remove.every((x) => x.why === 'beyond-keep')).toBe(true);
    expect(removedTags(selectPrune([moving], { keep: 0, olderThanMs: 0, now }, new Set()))).toEqual([]);
  });

  it('removes what is older than the limit, even among the newest N; an unknown age is never old and ranks newest', () => {
    const r = selectPrune([...five, exact(6, null)], { keep: 3, olderThanMs: 2.5 * DAY, now }, new Set());
    // 6 (unknown) and 1 are the newest two, 2 the third; 3,4,5 are old
    expect(removedTags(r)).toEqual([exact(3, 0).tag, exact(4, 0).tag, exact(5, 0).tag]);
    expect(r.remove.every((x) => x.why === 'older-than')).toBe(true);
    const countOnly = selectPrune([...five, exact(6, null)], { keep: 1, olderThanMs: null, now }, new Set());
    expect(removedTags(countOnly)).not.toContain(exact(6, 0).tag);
  });

  it('spares a tag a workspace here runs from', () => {
    const r = selectPrune(five, { keep: 1, olderThanMs: null, now }, new Set([exact(4, 0).tag]));
    expect(removedTags(r)).toEqual([exact(2, 0).tag, exact(3, 0).tag, exact(5, 0).tag]);
    expect(r.spared).toEqual([{ tag: exact(4, 0).tag, why: 'a workspace on this node runs from it' }]);
  });

  it('never deletes a digest a staying tag (moving or kept exact) points at; removes a shared digest once, with its signature', () => {
    const sharedWithMoving = exact(7, 9, d(100));
    const sharedWithKept = exact(8, 8, d(1));
    const twinA = exact(9, 9, d(900));
    const twinB = exact(10, 9, d(900));
    const sig: TagInfo = { tag: signatureTag(d(900)), digest: d(901), created: null };
    const keptSig: TagInfo = { tag: signatureTag(d(1)), digest: d(902), created: null };
    const r = selectPrune(
      [moving, exact(1, 1), sharedWithMoving, sharedWithKept, twinA, twinB, sig, keptSig],
      { keep: 1, olderThanMs: null, now },
      new Set(),
    );
    expect(r.remove).toEqual([
      { digest: d(900), tags: [twinB.tag, twinA.tag].sort(), created: twinA.created, why: 'beyond-keep', signatureTag: sig },
    ]);
    expect(r.spared.map((s) => s.tag).sort()).toEqual([sharedWithMoving.tag, sharedWithKept.tag].sort());
    expect(r.spared.find((s) => s.tag === sharedWithMoving.tag)?.why).toMatch(/devcontainer-cache/);
  });
});
