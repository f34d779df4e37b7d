import { describe, expect, it } from 'vitest';
import { Mutex } from '../../../agent/src/workspace/mutex.js';

describe('Mutex', () => {
  it('runs tasks one at a time in order, and a failing task does not block the next', async () => {
    const m = new Mutex();
    const log: string[] = [];
    let running = 0;
    const task =
      (name: string, fail = false) =>
      async () => {
        running += 1;
        expect(running).toBe(1);
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, 5));
        log.push(`end ${name}`);
        running -= 1;
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([m.run(task('a')), m.run(task('b', true)), m.run(task('c'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });
});
