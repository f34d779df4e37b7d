/**
 * Every error code the agent reports, in the CLI's JSON, the API's error
 * body and a workspace's result. Callers branch on the code, never on the
 * message. The agent's errors (agent/src/errors.ts) take theirs from here, so
 * the API schema and the OpenAPI document list exactly these
 * (workspace-result.ts `ErrorCodeSchema`). No zod here: the agent's start
 * path loads this module.
 */
/** Codes that mean the caller's input was wrong (exit 2, HTTP 400): nothing was created. */
export const INPUT_CODES = [
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
  // a machine or image job (`/v1/jobs/:jobId`) this node does not know, or the caller may not see
  'JOB_NOT_FOUND',
  'WORKSPACE_EXISTS',
  // an Idempotency-Key this caller already used for another request (HTTP 422), or one whose request is still at work (409)
  'IDEMPOTENCY_KEY_REUSED',
  'IDEMPOTENCY_KEY_IN_USE',
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
