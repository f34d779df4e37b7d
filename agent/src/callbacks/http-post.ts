/**
 * One JSON POST to the control plane, classified the way every caller retries:
 * 2xx delivered; 408, 429, 5xx, network errors and timeouts are worth another
 * try; any other answer (4xx, or a redirect, which is not followed so the
 * bearer token goes nowhere else) is final.
 */
export type PostOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'rejected'; status: number }
  | { kind: 'retry'; status?: number; retryAfterMs?: number; error?: string };

export interface PostJsonOptions {
  fetch: typeof fetch;
  url: string;
  body: unknown;
  /** sent as `Authorization: Bearer <token>` */
  token?: string;
  /** extra headers, e.g. `Idempotency-Key` */
  headers?: Record<string, string>;
  /** until the response headers arrive; real time, not the injectable timers */
  timeoutMs: number;
  /** aborts the request from outside (shutdown) */
  signal?: AbortSignal;
  now?: () => number;
}

const RETRYABLE_4XX = new Set([408, 429]);
const HONOUR_RETRY_AFTER = new Set([429, 503]);

export async function postJson(options: PostJsonOptions): Promise<PostOutcome> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    ...options.headers,
  };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let res: Response;
  try {
    res = await options.fetch(options.url, {
      method: 'POST',
      headers,
      body: JSON.stringify(options.body ?? null),
      signal,
      redirect: 'manual',
    });
  } catch (err) {
    return { kind: 'retry', error: describeFetchError(err, options.timeoutMs, timeout.aborted) };
  }
  // The answer's body is not used; drop it so the connection is freed.
  await res.body?.cancel().catch(() => undefined);
  const status = res.status;
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status >= 500 || RETRYABLE_4XX.has(status) || status === 0) {
    const retryAfterMs = HONOUR_RETRY_AFTER.has(status) ? parseRetryAfter(res.headers.get('retry-after'), options.now ?? Date.now) : undefined;
    return retryAfterMs === undefined ? { kind: 'retry', status } : { kind: 'retry', status, retryAfterMs };
  }
  return { kind: 'rejected', status };
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: () => number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now());
}

/** Exponential backoff with full jitter: `random() * min(max, base * 2^retry)`, retry counted from 0. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.round(random() * Math.min(maxMs, baseMs * 2 ** Math.min(retry, 52)));
}

/** One line for a log: what went wrong at the transport level (never headers or body). */
function describeFetchError(err: unknown, timeoutMs: number, timedOut: boolean): string {
  if (timedOut) return `no answer within ${timeoutMs} ms`;
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'AbortError') return 'aborted';
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail ? `${err.message}: ${detail}` : err.message;
}
