import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { singleFileTar } from '../../../agent/src/docker/single-file-tar.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('singleFileTar', () => {
  it.each([
    ['a short Dockerfile', 'FROM sha256:abc\n'],
    ['exactly one block', 'x'.repeat(512)],
    ['more than one block, not UTF-8 safe ASCII', `FROM x\nLABEL a="é${'y'.repeat(700)}"\n`],
  ])('is read back by tar: %s', async (_what, content) => {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-tar-'));
    dirs.push(dir);
    const archive = singleFileTar('Dockerfile', content);
    expect(archive.length % 512).toBe(0);
    await writeFile(join(dir, 'a.tar'), archive);
    const listed = await execa('tar', ['-tvf', join(dir, 'a.tar')]);
    expect(listed.stdout.trim().split('\n')).toHaveLength(1);
    expect(listed.stdout).toMatch(/^-rw-r--r-- .* Dockerfile$/);
    await execa('tar', ['-xf', join(dir, 'a.tar'), '-C', dir]);
    expect(await readFile(join(dir, 'Dockerfile'), 'utf8')).toBe(content);
  });
});
