import { boundEvent, type BoundListener } from './event-bounds.js';
import type { EventSink, SequencedEvent, WorkspaceEvent } from './events.js';

/**
 * Sequence numbers of a workspace's events. `GET /v1/workspaces/:id/events`
 * serves them and takes `?after=<seq>` to resume, so a number must mean the
 * same event for as long as the event is kept: it is stamped into the event
 * before the live history (jobs/event-hub.ts) and the log
 * (state/workspace-store.ts `events.ndjson`) see it, and a new run of the same
 * id continues from the last number its log holds. The log's trim
 * (state/event-log-trim.ts) keeps the numbers of the lines it keeps; its
 * marker takes the number of the first line it stands for. A purge removes
 * the log, and with it the count: the next workspace of that id starts at 1.
 */

/**
 * The events of a log, each with its seq. Lines written before seq existed
 * have none: each gets the one after the line before it, so they read the
 * same every time until the log is trimmed (which writes those numbers in).
 */
export function numbered(events: readonly WorkspaceEvent[]): SequencedEvent[] {
  let last = 0;
  return events.map((e) => {
    const seq = typeof e.seq === 'number' && Number.isSafeInteger(e.seq) && e.seq > 0 ? e.seq : last + 1;
    last = Math.max(last, seq);
    return e.seq === seq ? (e as SequencedEvent) : { ...e, seq };
  });
}

/** The events of a log with a seq above `after` and below `below`, numbered (see numbered). */
export function between(events: readonly WorkspaceEvent[], after: number, below = Infinity): SequencedEvent[] {
  return numbered(events).filter((e) => e.seq > after && e.seq < below);
}

/** The seq the next event recorded after these gets: one past the highest, 1 for none. */
export function nextSeq(events: readonly WorkspaceEvent[]): number {
  return numbered(events).reduce((max, e) => Math.max(max, e.seq), 0) + 1;
}

/**
 * The sink a run's events go through first: each emitted event becomes one
 * event per log line, each cut to the text cap (events/event-bounds.ts), and
 * each is stamped with the next seq from `first` on. Everything after it (the
 * live history, the log, progress output) sees the same numbers. `onBound`
 * hears how many texts were cut.
 */
export function sequencingSink(first: number, inner: EventSink, onBound?: BoundListener): EventSink & { next(): number } {
  let next = first;
  return {
    emit: (e) => {
      const { events, cut } = boundEvent(e);
      if (cut > 0) onBound?.('cut', cut);
      for (const one of events) inner.emit({ ...one, seq: next++ });
    },
    next: () => next,
  };
}

/**
 * Reads `after` of `GET /v1/workspaces/:id/events?after=<seq>`: a whole number
 * from 0 (0 means from the first event). Anything else, including the
 * parameter given twice, is null.
 */
export function parseAfter(raw: unknown): number | null {
  if (typeof raw !== 'string' || !/^\d{1,16}$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}
