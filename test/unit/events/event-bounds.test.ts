import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boundEvent, cutEventText, markerCount, MAX_EVENT_TEXT_CHARS, type BoundAction } from '../../../agent/src/events/event-bounds.js';
import type { PhaseName, WorkspaceEvent } from '../../../agent/src/events/events.js';
import { JobEvents } from '../../../agent/src/jobs/event-hub.js';
import { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import { phaseOf, textOf } from '../../support/events.js';

const ts = '2026-01-01T00:00:00.000Z';
const log = (i: number, text = `line ${i}`): WorkspaceEvent => ({ ts, workspaceId: 'w', type: 'log', text });
const phase = (name: PhaseName): WorkspaceEvent => ({ ts, workspaceId: 'w', type: 'phase-start', phase: name });

async function all(events: JobEvents): Promise<WorkspaceEvent[]> {
  const out: WorkspaceEvent[] = [];
  for await (const e of events.follow(new AbortController().signal)) out.push(e);
  return out;
}

describe('cutEventText', () => {
  it('cuts a long text to the cap with a marker saying how much went; short ones are the same object', () => {
    const short = log(1);
    expect(cutEventText(short)).toBe(short);
    const long = log(2, 'x'.repeat(MAX_EVENT_TEXT_CHARS + 1234));
    const cut = cutEventText(long);
    expect(textOf(cut)!.startsWith('x'.repeat(MAX_EVENT_TEXT_CHARS))).toBe(true);
    expect(textOf(cut)).toContain('1234 more characters dropped');
    expect(textOf(cut)!.length).toBeLessThan(MAX_EVENT_TEXT_CHARS + 100);
  });
});

describe('boundEvent', () => {
  it('splits a log chunk into one event per line, cutting each long one; other events stay whole', () => {
    const chunk = log(0, `a\r\nb\n${'z'.repeat(MAX_EVENT_TEXT_CHARS + 5)}\nc\n`);
    const { events, cut } = boundEvent(chunk);
    expect(events.map((e) => textOf(e)!.slice(0, 3))).toEqual(['a', 'b', 'zzz', 'c']);
    expect(events.every((e) => e.type === 'log' && e.ts === ts)).toBe(true);
    expect(cut).toBe(1);
    const note: WorkspaceEvent = { ts, workspaceId: 'w', type: 'note', text: 'two\nlines' };
    expect(boundEvent(note)).toEqual({ events: [note], cut: 0 });
    expect(boundEvent(log(1, 'one line\n')).events.map(textOf)).toEqual(['one line\n']);
  });
});

describe('JobEvents history cap', () => {
  it('keeps at most the cap of log lines, every other event, and one marker counting the dropped ones', async () => {
    const bounds: Array<[BoundAction, number]> = [];
    const events = new JobEvents({ maxLogLines: 100, onBound: (a, n) => bounds.push([a, n]) });
    events.emit(phase('clone'));
    for (let i = 0; i < 1000; i++) {
      events.emit(log(i));
      if (i === 500) events.emit(phase('up'));
    }
    events.emit({ ts, workspaceId: 'w', type: 'outcome', status: 'ready', ms: 1 });
    events.close();
    const seen = await all(events);
    const logs = seen.filter((e) => e.type === 'log');
    expect(logs.length).toBeLessThanOrEqual(100);
    expect(logs.at(-1)!.text).toBe('line 999'); // the newest stay
    const markers = seen.filter((e) => markerCount(e) !== null);
    expect(markers).toHaveLength(1);
    expect(markerCount(markers[0]!)).toBe(1000 - logs.length);
    expect(seen.map(phaseOf).filter(Boolean)).toEqual(['clone', 'up']);
    expect(seen.at(-1)!.type).toBe('outcome');
    // The marker stands where the first dropped line was: right after the first phase.
    expect(seen[1]).toBe(markers[0]);
    expect(bounds.every(([a]) => a === 'dropped-history')).toBe(true);
    expect(bounds.reduce((n, [, k]) => n + k, 0)).toBe(1000 - logs.length);
    expect(events.size()).toBe(seen.length);
  });

  it('a follower that joined early gets every line once, in order, while the history is trimmed behind it', async () => {
    const events = new JobEvents({ maxLogLines: 10 });
    const controller = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of events.follow(controller.signal)) if (e.type === 'log') got.push(e.text!);
    })();
    for (let i = 0; i < 50; i++) {
      events.emit(log(i));
      await new Promise((r) => setImmediate(r));
    }
    events.close();
    await reading;
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i}`));
  });
});

describe('events.ndjson cap (WorkspaceStore.eventLog)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmstart-event-cap-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stays under the cap: oldest log lines dropped, phases kept, one marker with the running total; long lines cut', async () => {
    const store = new WorkspaceStore(dir);
    const maxBytes = 64 * 1024;
    const dropped: number[] = [];
    const sink = store.eventLog('w', { maxBytes, onBound: (a, n) => a === 'dropped-file' && dropped.push(n) });
    sink.emit(phase('clone'));
    for (let i = 0; i < 5000; i++) {
      sink.emit(log(i, `line ${i} ${'y'.repeat(60)}`));
      if (i === 2500) sink.emit(phase('up'));
    }
    sink.emit(log(5000, 'z'.repeat(MAX_EVENT_TEXT_CHARS * 3)));
    sink.emit({ ts, workspaceId: 'w', type: 'outcome', status: 'ready', ms: 1 });
    await sink.flush();
    const size = (await stat(join(store.dir('w'), 'events.ndjson'))).size;
    expect(size).toBeLessThanOrEqual(maxBytes);
    const events = await store.readEvents('w');
    const markers = events.filter((e) => markerCount(e) !== null);
    expect(markers).toHaveLength(1);
    const logs = events.filter((e) => e.type === 'log');
    expect(markerCount(markers[0]!)).toBe(5001 - logs.length);
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(5001 - logs.length);
    expect(dropped.length).toBeGreaterThan(1); // trimmed more than once: the count carried on
    expect(events.filter((e) => e.type === 'phase-start').map((e) => e.phase)).toEqual(['clone', 'up']);
    expect(events.at(-1)!.type).toBe('outcome');
    expect(logs.at(-1)!.text).toContain('more characters dropped');
    expect(logs.at(-1)!.text!.length).toBeLessThan(MAX_EVENT_TEXT_CHARS + 100);
    expect(logs.at(-2)!.text).toMatch(/^line 4999 /);
  });
});
