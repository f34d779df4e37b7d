import { chmod, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../state/atomic-file.js';
import type { CallbackRequest } from './outbox.js';

/** A callback as kept on disk until it is delivered or given up. */
export interface StoredCallback {
  version: 1;
  /** stable across retries and restarts; sent as `Idempotency-Key` */
  id: string;
  /** enqueue order; file names sort by it, so does delivery per workspace */
  seq: number;
  /** ms since the epoch, for the give-up age */
  createdAt: number;
  /** failed attempts so far; drives the backoff after a restart */
  attempts: number;
  request: CallbackRequest;
}

const StoredCallbackSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f-]{36}$/),
  seq: z.number().int().nonnegative(),
  createdAt: z.number(),
  attempts: z.number().int().nonnegative(),
  request: z.object({
    url: z.string(),
    token: z.string(),
    body: z.unknown(),
    kind: z.enum(['ready', 'provisioning-failed']),
    workspaceId: z.string(),
  }),
});

const NAME = /^\d{16}-[0-9a-f-]{36}\.json$/;

/**
 * One JSON file per callback, `<seq, 16 digits>-<id>.json`, mode 0600 in a
 * 0700 directory, each write crash-safe. Files hold the bearer token.
 */
export class CallbackStore {
  constructor(readonly dir: string) {}

  /** Makes the directory, removes temporary files a crash left, returns the highest seq on disk. */
  async init(): Promise<number> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    let maxSeq = 0;
    for (const name of await readdir(this.dir)) {
      if (name.endsWith('.tmp')) await rm(join(this.dir, name), { force: true });
      else if (NAME.test(name)) maxSeq = Math.max(maxSeq, Number(name.slice(0, 16)));
    }
    return maxSeq;
  }

  /** Names of the stored callbacks, oldest first. */
  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((n) => NAME.test(n)).sort();
  }

  async read(name: string): Promise<StoredCallback> {
    const parsed = StoredCallbackSchema.parse(JSON.parse(await readFile(join(this.dir, name), 'utf8')));
    return parsed as StoredCallback;
  }

  async write(cb: StoredCallback): Promise<void> {
    await writeFileAtomic(join(this.dir, fileName(cb)), `${JSON.stringify(cb)}\n`, 0o600);
  }

  async remove(cb: StoredCallback): Promise<void> {
    await rm(join(this.dir, fileName(cb)), { force: true });
  }

  /** Moves an unreadable file out of the way (kept for an operator, never retried). */
  async quarantine(name: string): Promise<void> {
    await rename(join(this.dir, name), join(this.dir, `${name}.unreadable`));
  }
}

export function fileName(cb: Pick<StoredCallback, 'seq' | 'id'>): string {
  return `${String(cb.seq).padStart(16, '0')}-${cb.id}.json`;
}
