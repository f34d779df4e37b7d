/**
 * One error type for the whole agent. Callers branch on `code`, never on the
 * message; `detail` carries the raw cause for operators (it must never hold a
 * secret), `cause` keeps the original error for logs.
 */
import { ERROR_CODES, INPUT_CODES, type ErrorCode } from '../../shared/src/error-codes.js';

export { ERROR_CODES, type ErrorCode };

export const INPUT_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(INPUT_CODES);

export interface ErrorOptions {
  cause?: unknown;
  /** Raw cause for operators (no secrets). */
  detail?: string;
}

export class WarmstartError extends Error {
  readonly code: ErrorCode;
  readonly detail?: string;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WarmstartError';
    this.code = code;
    if (options.detail !== undefined) this.detail = options.detail;
  }

  get isInputError(): boolean {
    return INPUT_ERROR_CODES.has(this.code);
  }
}

/** The one error shape of the CLI's JSON output and the HTTP API. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  detail?: string;
}

/** Turns anything thrown into the public error shape; unknown errors leak nothing. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof WarmstartError) {
    return err.detail === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, detail: err.detail };
  }
  return { code: 'INTERNAL', message: 'internal error' };
}

export function isWarmstartError(err: unknown, code?: ErrorCode): err is WarmstartError {
  return err instanceof WarmstartError && (code === undefined || err.code === code);
}

/** A short, single-line description of any error, for `reason` fields. */
export function describeError(err: unknown): string {
  if (err instanceof WarmstartError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

/** {@link describeError} with a WarmstartError's `detail` in parentheses: for notes an operator acts on (e.g. GitHub's status and message). */
export function describeErrorWithDetail(err: unknown): string {
  return err instanceof WarmstartError && err.detail ? `${describeError(err)} (${err.detail})` : describeError(err);
}
