import { droppedMarker, MAX_HISTORY_LOG_LINES, type BoundListener } from '../events/event-bounds.js';
import type { EventSink, WorkspaceEvent } from '../events/events.js';
import { Wakeup } from '../util/wakeup.js';

interface Entry {
  seq: number;
  event: WorkspaceEvent;
}

export interface JobEventsOptions {
  /** log lines kept; MAX_HISTORY_LOG_LINES (events/event-bounds.ts) by default */
  maxLogLines?: number;
  /** told how many lines went each time some are dropped */
  onBound?: BoundListener;
}

/**
 * The live events of one running job, kept in order for followers, who read
 * them by sequence number (the event's own `seq`, events/event-seq.ts; one
 * counted here for an event without): one that joins late misses nothing
 * that is still kept, one that joins early waits without polling, one that
 * resumes gets only what came after its last. Log lines past the cap
 * are dropped oldest first (a tenth of the cap at a time, so a flood costs
 * one array copy per batch, not per line); one marker event, where the first
 * dropped line was, says how many went. Other events are always kept.
 */
export class JobEvents implements EventSink {
  private entries: Entry[] = [];
  private nextSeq = 1;
  private logLines = 0;
  private dropped = 0;
  private marker: Entry | null = null;
  private readonly waiters = new Wakeup();
  private closed = false;
  private readonly maxLogLines: number;
  private readonly onBound: BoundListener | undefined;

  constructor(options: JobEventsOptions = {}) {
    this.maxLogLines = Math.max(1, options.maxLogLines ?? MAX_HISTORY_LOG_LINES);
    this.onBound = options.onBound;
  }

  emit(event: WorkspaceEvent): void {
    if (this.closed) return;
    this.entries.push({ seq: event.seq ?? this.nextSeq++, event });
    if (event.type === 'log') {
      this.logLines += 1;
      if (this.logLines > this.maxLogLines) this.dropOldest(event);
    }
    this.wake();
  }

  /** How many events are held now (for tests and bounds checks). */
  size(): number {
    return this.entries.length;
  }

  /** No more events: followers finish after the last one. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  /** Every kept event with a seq above `after` (0: all), then new ones as they come, until close or abort. */
  async *follow(signal: AbortSignal, after = 0): AsyncGenerator<WorkspaceEvent> {
    let last = after;
    while (!signal.aborted) {
      for (let i = this.firstAfter(last); i < this.entries.length; i = this.firstAfter(last)) {
        const entry = this.entries[i]!;
        last = entry.seq;
        yield entry.event;
      }
      if (this.closed) return;
      await this.waiters.wait(signal);
    }
  }

  /** Index of the first entry with a sequence number above `seq` (entries are sorted by it). */
  private firstAfter(seq: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private dropOldest(latest: WorkspaceEvent): void {
    const target = this.maxLogLines - Math.max(1, Math.floor(this.maxLogLines / 10));
    let toDrop = this.logLines - target;
    const dropping = toDrop;
    const kept: Entry[] = [];
    for (const entry of this.entries) {
      if (toDrop > 0 && entry.event.type === 'log') {
        toDrop -= 1;
        // The marker takes the place (and sequence number) of the first line ever dropped.
        if (this.marker === null) {
          this.marker = { seq: entry.seq, event: entry.event };
          kept.push(this.marker);
        }
        continue;
      }
      kept.push(entry);
    }
    this.entries = kept;
    this.logLines -= dropping;
    this.dropped += dropping;
    // A follower already past the marker has the lines it stands for.
    const marker = this.marker!;
    marker.event = droppedMarker({ ts: latest.ts, workspaceId: latest.workspaceId, seq: marker.event.seq }, this.dropped, 'in-memory event history');
    this.onBound?.('dropped-history', dropping);
  }

  private wake(): void {
    this.waiters.wake();
  }
}
