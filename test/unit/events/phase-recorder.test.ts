import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WorkspaceEvent } from '../../../agent/src/events/events.js';
import { parseFailpoints, PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import { phaseOf } from '../../support/events.js';

const collect = (): { events: WorkspaceEvent[]; sink: { emit(e: WorkspaceEvent): void } } => {
  const events: WorkspaceEvent[] = [];
  return { events, sink: { emit: (e) => events.push(e) } };
};

describe('WARMSTART_FAILPOINTS', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('parses pause:<phase>=<ms> entries; unset or empty means none', () => {
    expect(parseFailpoints(undefined).size).toBe(0);
    expect(parseFailpoints('').size).toBe(0);
    expect(parseFailpoints('  ').size).toBe(0);
    expect([...parseFailpoints('pause:clone=5000, pause:remove-old=20,pause:clone=7')]).toEqual([
      ['clone', 7],
      ['remove-old', 20],
    ]);
  });

  it('refuses what it does not understand instead of silently doing nothing', () => {
    for (const bad of ['clone=5000', 'pause:clone', 'pause:clone=abc', 'stop:clone=1', 'pause:Clone=1', 'pause:clone=-1', 'pause:clone=99999999']) {
      expect(() => parseFailpoints(bad), bad).toThrow(/WARMSTART_FAILPOINTS/);
    }
  });

  it('the named phase waits after its phase-start, before its work; other phases do not wait', async () => {
    vi.useFakeTimers();
    const { events, sink } = collect();
    let clock = 0;
    const rec = new PhaseRecorder('w', sink, () => clock, parseFailpoints('pause:clone=5000'));
    const work = vi.fn(async () => 'cloned');
    const done = rec.phase('clone', work);
    await vi.advanceTimersByTimeAsync(0);
    expect(events.map((e) => [e.type, phaseOf(e)])).toEqual([['phase-start', 'clone']]);
    expect(work).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(4_999);
    expect(work).not.toHaveBeenCalled();
    clock = 5_000;
    await vi.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toBe('cloned');
    expect(work).toHaveBeenCalledTimes(1);
    expect(events.at(-1)).toMatchObject({ type: 'phase-end', phase: 'clone', ms: 5_000, status: 'ok' });

    const other = vi.fn(async () => 1);
    await expect(rec.phase('volume', other)).resolves.toBe(1);
    expect(other).toHaveBeenCalledTimes(1);
  });

  it('without failpoints a phase starts its work at once (no timer at all)', async () => {
    vi.useFakeTimers();
    const { events, sink } = collect();
    const rec = new PhaseRecorder('w', sink, () => 0, parseFailpoints(undefined));
    const work = vi.fn(async () => 'x');
    const done = rec.phase('clone', work);
    expect(vi.getTimerCount()).toBe(0);
    await expect(done).resolves.toBe('x');
    expect(events.map((e) => e.type)).toEqual(['phase-start', 'phase-end']);
  });

  it('the default recorder reads no failpoints when the variable is unset', async () => {
    expect(process.env.WARMSTART_FAILPOINTS ?? '').toBe('');
    const { events, sink } = collect();
    const rec = new PhaseRecorder('w', sink);
    const work = vi.fn(async () => 'y');
    await expect(rec.phase('clone', work)).resolves.toBe('y');
    expect(events.map((e) => e.type)).toEqual(['phase-start', 'phase-end']);
  });
});
