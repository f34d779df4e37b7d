/**
 * `work`, or a rejection naming the limit when it has not settled within
 * `ms`. The work itself goes on (a promise cannot be cancelled); only the
 * wait is bounded. The timer never holds the process open.
 */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
