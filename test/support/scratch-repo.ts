import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';

/** A repository directory made fresh for each test of the calling file, inside a scratch dir that also holds what lies "outside" it. */
export interface ScratchRepo {
  /** The scratch dir: the repository's parent, where files outside the repository go. */
  readonly base: string;
  readonly repo: string;
  /** Writes `text` at `rel` inside the repository, making its directories; returns the full path. */
  put(rel: string, text: string): Promise<string>;
}

export function useScratchRepo(prefix: string): ScratchRepo {
  let base = '';
  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), `${prefix}-`));
    await mkdir(path.join(base, 'repo'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });
  return {
    get base() {
      return base;
    },
    get repo() {
      return path.join(base, 'repo');
    },
    async put(rel, text) {
      const file = path.join(base, 'repo', rel);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text);
      return file;
    },
  };
}
