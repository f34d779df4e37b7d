/**
 * One error type for the whole agent. Callers branch on `code`, never on the
 * message; `detail` carries the raw cause for operators (it must never hold a
 * secret), `cause` keeps the original error for logs.
 */
/** Codes that mean the caller's input was wrong (exit 2, HTTP 400): nothing was created. */
const INPUT_CODES = [
  'INVALID_WORKSPACE_ID',
  'INVALID_CONFIG_NAME',
  'INVALID_REPOSITORY',
  'INVALID_REGISTRY',
  'INVALID_CACHE_REF',
  'INVALID_ARGUMENT',
  'WORKSPACE_CONFLICT',
  // HTTP API input errors
  'INVALID_REQUEST',
  'INVALID_JSON',
  'INVALID_IMAGE_NAME',
  'INVALID_IMAGE_TAG',
  'INVALID_CAPABILITY',
  'INVALID_CALLBACK_URL',
  // the caller's token does not reach this far (HTTP 403): nothing was created
  'CACHE_REF_FORBIDDEN',
  'IMAGE_NAME_FORBIDDEN',
  // the registry needs its own API for this (e.g. GHCR deletes through GitHub's packages API)
  'REGISTRY_UNSUPPORTED',
] as const;

export const ERROR_CODES = [
  ...INPUT_CODES,
  // workspace failures
  'GIT_CLONE_FAILED',
  'DEVCONTAINER_CONFIG_INVALID',
  'DEVCONTAINER_UP_FAILED',
  'DEVCONTAINER_UP_TIMEOUT',
  'DEVCONTAINER_NO_RESULT',
  'DOCKER_UNAVAILABLE',
  'DOCKER_OPERATION_FAILED',
  'DEFAULT_IMAGE_FAILED',
  // the repository asked for host access the operator's policy refuses (recovery)
  'HOST_ACCESS_DENIED',
  'WORKSPACE_NOT_FOUND',
  'PREBUILD_NOT_FOUND',
  'WORKSPACE_EXISTS',
  'JOB_CANCELLED',
  'AGENT_RESTARTED',
  'SHUTTING_DOWN',
  // HTTP API only
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'STATE_WRITE_FAILED',
  // cache / registry trouble: recorded, never fails a workspace
  'REGISTRY_UNREACHABLE',
  'REGISTRY_AUTH_FAILED',
  'REGISTRY_PUSH_DENIED',
  'REGISTRY_ERROR',
  'CACHE_IMAGE_MISSING',
  'PUSH_TIMEOUT',
  'GITHUB_APP_AUTH_FAILED',
  // a cache or exact image that is not this repository's own (labels): not used
  'CACHE_IDENTITY_MISMATCH',
  // WARMSTART_CACHE_TRUSTED_KEYS is set and the image carries no valid signature by one of them: not used
  'CACHE_SIGNATURE_INVALID',
  // an exact image older than WARMSTART_EXACT_MAX_AGE: not started, the start rebuilds every step (no layer cache)
  'EXACT_IMAGE_EXPIRED',
  // machine backends
  'BACKEND_UNSUPPORTED',
  'BACKEND_UNAVAILABLE',
  'BACKEND_PRECONDITION',
  'BACKEND_ERROR',
  'MACHINE_NOT_FOUND',
  'IMAGE_NOT_FOUND',
  'SNAPSHOT_NOT_FOUND',
  'WORKSPACE_NOT_RUNNING',
  'OWNER_MISMATCH',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

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
  code: string;
  message: string;
  detail?: string;
}

/** Turns anything thrown into the public error shape; unknown errors leak nothing. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof WarmstartError) {
    return err.detail === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, detail: err.detail };
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
