import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bestEffort, unlessMissing } from '../../../agent/src/util/best-effort.js';

describe('bestEffort', () => {
  it('says what it lets go, once, and never throws; says nothing when the work succeeds', async () => {
    const lines: string[] = [];
    await bestEffort('remove the job docker config', Promise.reject(new Error('EACCES: permission denied')), (m) => lines.push(m));
    await bestEffort(
      'remove nothing',
      async () => undefined,
      (m) => lines.push(m),
    );
    expect(lines).toEqual(['could not remove the job docker config: EACCES: permission denied']);
  });
});

describe('unlessMissing', () => {
  it('turns only "not there" into the fallback; any other error is thrown', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-missing-'));
    try {
      expect(await unlessMissing(readFile(join(dir, 'none')), null)).toBeNull();
      expect(await unlessMissing(readFile(join(dir, 'none', 'below')), 'fallback')).toBe('fallback');
      await expect(unlessMissing(readFile(dir), null)).rejects.toMatchObject({ code: 'EISDIR' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
