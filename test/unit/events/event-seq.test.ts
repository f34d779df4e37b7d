import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { markerCount } from '../../../agent/src/events/event-bounds.js';
import { nextSeq, numbered, parseAfter, sequencingSink } from '../../../agent/src/events/event-seq.js';
import type { SequencedEvent, WorkspaceEvent } from '../../../agent/src/events/events.js';
import { JobEvents } from '../../../agent/src/jobs/event-hub.js';
import { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';

const ts = '2026-01-01T00:00:00.000Z';
const log = (text: string): WorkspaceEvent => ({ ts, workspaceId: 'w', type: 'log', text });
const note = (text: string): WorkspaceEvent => ({ ts, workspaceId: 'w', type: 'note', text });

describe('sequencingSink', () => {
  it('numbers each event from the first seq on, one number per line of a chunk', () => {
    const got: WorkspaceEvent[] = [];
    const sink = sequencingSink(41, { emit: (e) => got.push(e) });
    sink.emit(note('start'));
    sink.emit(log('a\nb\r\nc\n'));
    sink.emit({ ...note('already numbered elsewhere'), seq: 3 });
    expect(got.map((e) => [e.seq, 'text' in e ? e.text : null])).toEqual([
      [41, 'start'],
      [42, 'a'],
      [43, 'b'],
      [44, 'c'],
      [45, 'already numbered elsewhere'],
    ]);
    expect(sink.next()).toBe(46);
  });
});

describe('numbered and nextSeq', () => {
  it('keep stored numbers, give lines from before numbers existed the one after the line before, and continue past the highest', () => {
    const events = [log('old 1'), log('old 2'), { ...log('new'), seq: 10 }, log('cli, unnumbered')];
    expect(numbered(events).map((e) => e.seq)).toEqual([1, 2, 10, 11]);
    expect(nextSeq(events)).toBe(12);
    expect(nextSeq([])).toBe(1);
  });
});

describe('parseAfter', () => {
  it('takes one whole number from 0, nothing else', () => {
    expect(parseAfter('0')).toBe(0);
    expect(parseAfter('123')).toBe(123);
    for (const bad of ['-1', '1.0', '', ' 1', '0x10', '1e3', '99999999999999999', ['1', '2'], undefined])
      expect(parseAfter(bad), String(bad)).toBeNull();
  });
});

describe('numbers in the event log, across trims', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmstart-seq-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a trimmed log keeps every kept line its number, the marker the number of the first line it stands for, and the count goes on', async () => {
    const store = new WorkspaceStore(dir);
    const file = store.eventLog('w', { maxBytes: 8 * 1024 });
    const sink = sequencingSink(1, file);
    sink.emit(note('begin'));
    for (let i = 1; i <= 600; i++) sink.emit(log(`line ${i} ${'y'.repeat(40)}`));
    sink.emit(note('end'));
    await file.flush();

    const events = numbered(await store.readEvents('w'));
    const seqs = events.map((e) => e.seq);
    // Strictly increasing in the file, as they were stamped.
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
    expect(events[0]).toMatchObject({ seq: 1, text: 'begin' });
    const marker = events.find((e) => markerCount(e) !== null)!;
    // The marker stands where the dropped lines began: line 1 had seq 2.
    expect(marker.seq).toBe(2);
    const firstKept = events.find((e) => e.type === 'log')!;
    // Every line after the marker kept the number it was written with: line n is seq n + 1.
    expect(firstKept.seq).toBe(Number(/^line (\d+) /.exec(firstKept.text)![1]) + 1);
    expect(markerCount(marker)).toBe(firstKept.seq - 2);
    expect(events.at(-1)).toMatchObject({ seq: 602, text: 'end' });
    expect(nextSeq(events)).toBe(603);
    // Every line on disk carries its number.
    const raw = (await readFile(join(store.dir('w'), 'events.ndjson'), 'utf8')).trim().split('\n');
    expect(raw.every((l) => typeof (JSON.parse(l) as { seq?: unknown }).seq === 'number')).toBe(true);
  });

  it('a log from before numbers existed gets them written in by its trim, the same ones a reader gave it before', async () => {
    const store = new WorkspaceStore(dir);
    await mkdir(store.dir('w'), { recursive: true });
    const old = Array.from({ length: 300 }, (_, i) => JSON.stringify(i % 50 === 0 ? note(`note ${i}`) : log(`old ${i} ${'x'.repeat(40)}`)));
    await writeFile(join(store.dir('w'), 'events.ndjson'), `${old.join('\n')}\n`);
    const before = new Map(numbered(await store.readEvents('w')).map((e) => ['text' in e ? e.text : '', e.seq]));

    const file = store.eventLog('w', { maxBytes: 8 * 1024 });
    const sink = sequencingSink(nextSeq(await store.readEvents('w')), file);
    sink.emit(log('new line'));
    await file.flush();

    const after = await store.readEvents('w');
    for (const e of after) expect(typeof e.seq).toBe('number'); // written in, not derived on read
    for (const e of after as SequencedEvent[]) {
      if (e.type === 'note' && markerCount(e) === null) expect(e.seq).toBe(before.get(e.text));
      if (e.type === 'log' && e.text !== 'new line') expect(e.seq).toBe(before.get(e.text));
    }
    expect(after.at(-1)).toMatchObject({ text: 'new line', seq: 301 });
  });
});

describe('JobEvents (the live history) by the events’ own numbers', () => {
  it('resumes after a seq, and its marker takes the number of the first line it stands for', async () => {
    const events = new JobEvents({ maxLogLines: 10 });
    const sink = sequencingSink(100, events);
    for (let i = 1; i <= 30; i++) sink.emit(log(`l${i}`));
    events.close();
    const read = async (after: number): Promise<SequencedEvent[]> => {
      const out: SequencedEvent[] = [];
      for await (const e of events.follow(new AbortController().signal, after)) out.push(e as SequencedEvent);
      return out;
    };
    const all = await read(0);
    const marker = all.find((e) => markerCount(e) !== null)!;
    expect(marker.seq).toBe(100);
    const seqs = all.map((e) => e.seq);
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
    expect(seqs.at(-1)).toBe(129);
    expect((await read(125)).map((e) => e.seq)).toEqual([126, 127, 128, 129]);
    expect(await read(129)).toEqual([]);
  });
});
