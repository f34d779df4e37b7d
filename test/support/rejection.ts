import { isWarmstartError, type WarmstartError } from '../../agent/src/errors.js';

/** The WarmstartError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<WarmstartError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isWarmstartError(err)) throw new Error(`expected a WarmstartError, got ${String(err)}`);
  return err;
}
