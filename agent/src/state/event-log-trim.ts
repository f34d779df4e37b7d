import { readFile } from 'node:fs/promises';
import { droppedMarker, markerCount } from '../events/event-bounds.js';
import { numbered } from '../events/event-seq.js';
import type { WorkspaceEvent } from '../events/events.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * Rewrites an `events.ndjson` that reached its cap (events/event-bounds.ts
 * MAX_EVENT_LOG_BYTES) down to `targetBytes`: its oldest log lines go, every
 * other event stays, and one marker event, where the first dropped line was,
 * counts every line dropped so far (an earlier marker's count carried on).
 * Sequence numbers stay as they were (events/event-seq.ts): lines from before
 * they existed get theirs written in, and the marker takes the earlier
 * marker's, or the first dropped line's.
 * Atomic: a reader sees the old file or the new one. Resolves with the new
 * size in bytes and how many lines this call dropped.
 */
export async function trimEventLog(path: string, targetBytes: number): Promise<{ size: number; dropped: number }> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const read = lines.flatMap((line) => {
    try {
      return [{ line, event: JSON.parse(line) as WorkspaceEvent }];
    } catch {
      return []; // a torn line after a crash: not worth keeping
    }
  });
  const seqs = numbered(read.map((p) => p.event));
  const parsed = read.map((p, i) => (p.event.seq === seqs[i]!.seq ? p : { line: JSON.stringify(seqs[i]), event: seqs[i]! }));
  let before = 0;
  let markerAt = -1;
  let earlier: WorkspaceEvent | null = null;
  let template: WorkspaceEvent | null = null;
  const rest: typeof parsed = [];
  for (const p of parsed) {
    const count = markerCount(p.event);
    if (count !== null && markerAt === -1) {
      before = count;
      earlier = p.event;
      markerAt = rest.length;
      continue;
    }
    rest.push(p);
  }
  const bytes = (l: string): number => Buffer.byteLength(l) + 1;
  let total = rest.reduce((n, p) => n + bytes(p.line), 0);
  // Room for the marker line itself.
  total += 200;
  let dropped = 0;
  const kept: typeof parsed = [];
  for (const p of rest) {
    if (total > targetBytes && p.event.type === 'log') {
      if (markerAt === -1) markerAt = kept.length;
      template ??= p.event;
      total -= bytes(p.line);
      dropped += 1;
      continue;
    }
    kept.push(p);
  }
  const out = kept.map((p) => p.line);
  if (markerAt !== -1) {
    const first = template ?? parsed[0]!.event;
    const seq = earlier?.seq ?? first.seq;
    const marker = droppedMarker({ ts: first.ts, workspaceId: first.workspaceId, seq }, before + dropped, 'events.ndjson cap');
    out.splice(Math.min(markerAt, out.length), 0, JSON.stringify(marker));
  }
  const text = out.length ? `${out.join('\n')}\n` : '';
  await writeFileAtomic(path, text, 0o600);
  return { size: Buffer.byteLength(text), dropped };
}
