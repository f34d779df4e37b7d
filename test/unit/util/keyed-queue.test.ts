import { describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../../agent/src/util/keyed-queue.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('KeyedQueue', () => {
  it('runs one task per key at a time, in order; other keys side by side; a failure goes to its caller only', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    const gate: Record<string, () => void> = {};
    const task =
      (name: string, fail = false) =>
      () =>
        new Promise<string>((resolve, reject) => {
          log.push(`start ${name}`);
          gate[name] = () => (fail ? reject(new Error(`${name} failed`)) : resolve(name));
        });
    const a1 = q.run('a', task('a1', true));
    const a2 = q.run('a', task('a2'));
    const b1 = q.run('b', task('b1'));
    await tick();
    expect(log).toEqual(['start a1', 'start b1']); // a2 waits for a1; b1 does not
    expect(q.size()).toBe(2);
    gate.a1!();
    await expect(a1).rejects.toThrow('a1 failed');
    await tick();
    expect(log).toEqual(['start a1', 'start b1', 'start a2']);
    gate.a2!();
    gate.b1!();
    expect(await a2).toBe('a2');
    expect(await b1).toBe('b1');
    await q.idle('a');
    await tick();
    expect(q.size()).toBe(0); // drained keys are forgotten
  });
});
