import { randomBytes } from 'node:crypto';
import { open, rename, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WarmstartError } from '../errors.js';

/**
 * Writes a file so that a crash leaves either the old or the new content:
 * write a temporary sibling, fsync it, rename over the target, fsync the dir.
 * A write that fails (a full disk: ENOSPC) removes its temporary file and
 * leaves the target as it was.
 */
export async function writeFileAtomic(path: string, content: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  // Unique per call: two writes of one file in the same millisecond must not share a temporary.
  const tmp = `${path}.${process.pid}.${Date.now()}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined); // the write error is the one to report; a leftover temporary is swept at start-up
    throw new WarmstartError('STATE_WRITE_FAILED', `could not write ${path}`, {
      cause: err,
      detail: (err as Error).message,
    });
  }
}
