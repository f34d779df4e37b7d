import { withText, type WorkspaceEvent } from './events.js';

/**
 * Bounds on what a build's output can cost. A repository decides what its
 * build prints, and a build that prints without end would otherwise grow
 * the agent's memory (jobs/event-hub.ts keeps a running job's events for
 * followers) and its state disk (state/workspace-store.ts `events.ndjson`)
 * until one of them runs out. Phase, outcome, push and note events are few
 * (a handful per phase) and what callers read a workspace's story from:
 * they are always kept. Log lines are what is cut and dropped, oldest first.
 * The build error log (workspace/build-log.ts) keeps its own 8 MiB cap.
 */

/**
 * Longest text of one event, in characters. A terminal line past this is
 * data (a minified file, a progress bar without newlines), not something a
 * person reads; cut, with a marker saying how much went.
 */
export const MAX_EVENT_TEXT_CHARS = 8 * 1024;

/**
 * Log lines a running job keeps in memory for followers of
 * `GET /v1/workspaces/:id/events`. At the text cap that is at most ~40 MiB
 * per job in the worst case, ~1 MiB for ordinary 200-character lines.
 */
export const MAX_HISTORY_LOG_LINES = 5_000;

/**
 * Size of a workspace's `events.ndjson`. When a log line would take it over,
 * the file is rewritten with its older log lines dropped (down to half the
 * cap: a rewrite every ~2 MiB of output, not every line), every other event
 * kept, and one marker event where the dropped lines were saying how many
 * went in all.
 */
export const MAX_EVENT_LOG_BYTES = 4 * 1024 * 1024;

/** What a bound did, for metrics (`warmstart_event_lines_total{action}`). */
export type BoundAction = 'cut' | 'dropped-history' | 'dropped-file';
export type BoundListener = (action: BoundAction, lines: number) => void;

const MARKER = /^warmstart: (\d+) earlier log lines? dropped /;

/** The event with its text cut to MAX_EVENT_TEXT_CHARS (marked), or the same event when it fits. */
export function cutEventText(e: WorkspaceEvent, max = MAX_EVENT_TEXT_CHARS): WorkspaceEvent {
  if (!('text' in e) || e.text === undefined || e.text.length <= max) return e;
  const kept = e.text.slice(0, max);
  return withText(e, `${kept} … [warmstart: line cut, ${e.text.length - max} more characters dropped]`);
}

/**
 * The events to record for one emitted event, each within the text cap. A
 * log event's text is a chunk of the CLI's output that can hold many lines
 * (docker prints as it buffers): it becomes one event per line, so the cap
 * bounds a line, not a chunk (a chunk cut at the cap would lose the ordinary
 * lines after its first 8 KiB). `cut` counts the texts that were cut.
 */
export function boundEvent(e: WorkspaceEvent, max = MAX_EVENT_TEXT_CHARS): { events: WorkspaceEvent[]; cut: number } {
  if (e.type !== 'log' || e.text === undefined || !/[\r\n]/.test(e.text.replace(/\r?\n$/, ''))) {
    const one = cutEventText(e, max);
    return { events: [one], cut: one === e ? 0 : 1 };
  }
  const lines = e.text.replace(/\r?\n$/, '').split(/\r?\n|\r/);
  let cut = 0;
  const events = lines.map((text) => {
    const whole = withText(e, text);
    const one = cutEventText(whole, max);
    if (one !== whole) cut += 1; // cutEventText hands back the same event when it fits
    return one;
  });
  return { events, cut };
}

/**
 * The one event standing in for `count` log lines dropped from `where`. It
 * takes the template's seq when it has one: the caller passes the first
 * dropped line's (or an earlier marker's), so the marker sits in the
 * numbering where the lines it stands for began (events/event-seq.ts).
 */
export function droppedMarker(template: Pick<WorkspaceEvent, 'ts' | 'workspaceId' | 'seq'>, count: number, where: string): WorkspaceEvent {
  const noun = count === 1 ? 'line' : 'lines';
  const text = `warmstart: ${count} earlier log ${noun} dropped (${where})`;
  return { ts: template.ts, workspaceId: template.workspaceId, type: 'note', text, ...(template.seq !== undefined ? { seq: template.seq } : {}) };
}

/** How many lines a marker event says were dropped, or null for any other event. */
export function markerCount(e: WorkspaceEvent): number | null {
  if (e.type !== 'note' || e.text === undefined) return null;
  const m = MARKER.exec(e.text);
  return m ? Number(m[1]) : null;
}
