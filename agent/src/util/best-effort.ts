/**
 * Two shapes of "carry on anyway", each saying what it lets go.
 *
 * `bestEffort` is for work whose failure must not stop the caller (a
 * cleanup, a record of something that already happened) but must not go
 * unsaid either: the failure is handed to `log` in one line naming what was
 * not done.
 *
 * `unlessMissing` is for reads where "not there" is an answer: ENOENT and
 * ENOTDIR become `fallback`; any other error (permissions, I/O, a corrupt
 * disk) is thrown, since treating it as "absent" would hide it.
 */
import { describeError } from '../errors.js';

/** Where a best-effort failure is told: an event note, a log line, stderr. */
export type LostLog = (message: string) => void;

/** Writes to stderr, for the CLI (its stdout may be one JSON object). */
export const stderrLog: LostLog = (message) => void process.stderr.write(`warmstart: ${message}\n`);

export async function bestEffort(what: string, work: Promise<unknown> | (() => Promise<unknown>), log: LostLog): Promise<void> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    log(`could not ${what}: ${describeError(err)}`);
  }
}

export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export async function unlessMissing<T, F>(read: Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await read;
  } catch (err) {
    if (isMissing(err)) return fallback;
    throw err;
  }
}
