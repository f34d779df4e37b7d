import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ApiError } from '../../../shared/src/api.js';
import { WarmstartError, type ErrorCode, type ErrorOptions } from '../errors.js';
import { lingerOnClose } from './linger.js';
import { validationsOf } from './validation.js';

/** A WarmstartError for the API's own refusals. */
export function apiError(code: ErrorCode, message: string, options?: ErrorOptions): WarmstartError {
  return new WarmstartError(code, message, options);
}

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  WORKSPACE_CONFLICT: 409,
  WORKSPACE_EXISTS: 409,
  // a key is one request: used again with another body it cannot be processed (422); its first request still at work (409)
  IDEMPOTENCY_KEY_REUSED: 422,
  IDEMPOTENCY_KEY_IN_USE: 409,
  WORKSPACE_NOT_FOUND: 404,
  PREBUILD_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  NOT_FOUND: 404,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  SHUTTING_DOWN: 503,
  // the state dir refused a write (full): nothing was recorded, try again later or on another node
  STATE_WRITE_FAILED: 507,
  // machine backends, golden images
  MACHINE_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  BACKEND_PRECONDITION: 409,
  WORKSPACE_NOT_RUNNING: 409,
  OWNER_MISMATCH: 403,
  CACHE_REF_FORBIDDEN: 403,
  IMAGE_NAME_FORBIDDEN: 403,
  BACKEND_UNSUPPORTED: 501,
  BACKEND_UNAVAILABLE: 503,
};

/** The HTTP status for an error code; by name, so codes added to errors.ts later map too. */
export function statusForCode(code: string): number {
  return STATUS_BY_CODE[code] ?? (code.startsWith('INVALID_') ? 400 : 500);
}

/** fastify's own request errors (parsing, routing) in our shape; its messages hold no input. */
const FASTIFY_CODES: Readonly<Record<string, { status: number; code: ErrorCode; message?: string }>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'the body is empty' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'the body is larger than the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'INVALID_REQUEST', message: 'Content-Length does not match the body' },
  FST_ERR_BAD_URL: { status: 400, code: 'INVALID_REQUEST', message: 'the URL is malformed' },
  FST_ERR_INVALID_URL: { status: 400, code: 'INVALID_REQUEST', message: 'the URL is malformed' },
  // A path segment (a workspace id, a machine name) longer than the router takes: as invalid as one a character too long.
  FST_ERR_MAX_PARAM_LENGTH: { status: 400, code: 'INVALID_REQUEST', message: 'a path segment is longer than the limit' },
  // A method with a body (QUERY) and no Content-Type, refused before any route runs.
  FST_ERR_ROUTE_MISSING_CONTENT_TYPE: { status: 400, code: 'INVALID_REQUEST', message: 'the request has a body but no Content-Type' },
};

export interface HttpErrorResponse {
  status: number;
  body: ApiError;
}

const INTERNAL: HttpErrorResponse = { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };

/** Anything thrown → status and body. Unknown errors become a 500 that says nothing more. */
export function toHttpError(err: unknown): HttpErrorResponse {
  if (err instanceof WarmstartError) {
    const body: ApiError = { code: err.code, message: err.message };
    if (err.detail !== undefined) body.detail = err.detail;
    return { status: statusForCode(err.code), body };
  }
  // Only fastify's request validation sets validationContext; a ZodError from
  // anywhere else (state on disk, a response) is our bug, hence a plain 500.
  const context = (err as { validationContext?: unknown } | null)?.validationContext;
  if (err instanceof z.ZodError && typeof context === 'string') {
    return {
      status: 400,
      body: { code: 'INVALID_REQUEST', message: `invalid request ${context}`, validations: validationsOf(err, context) },
    };
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && FASTIFY_CODES[code]) {
    const known = FASTIFY_CODES[code];
    return { status: known.status, body: { code: known.code, message: known.message ?? known.code } };
  }
  // Any other refusal fastify itself classes as the client's (its errors carry
  // a 4xx statusCode): the caller's mistake, not a 500, in our shape.
  const statusCode = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof code === 'string' && code.startsWith('FST_ERR_') && typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return { status: statusCode, body: { code: 'INVALID_REQUEST', message: 'the request is not valid' } };
  }
  return INTERNAL;
}

/** The one error handler: every error reply of the API is shaped here. */
export function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = toHttpError(err);
  if (status >= 500)
    request.log.error({ err }, 'request failed'); // request.log carries reqId
  else request.log.info({ code: body.code, status }, 'request refused');
  if (status === 401) void reply.header('www-authenticate', 'Bearer');
  // Refused before its body was read: let the client read the answer before the connection closes.
  if (!request.raw.complete) lingerOnClose(request.raw.socket);
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/**
 * Requests node's HTTP parser refuses before fastify sees them (malformed
 * request line or headers, a bad Content-Length, headers over the size
 * limit, a stalled request): the answer in the same shape, written on the
 * raw socket before it is closed (app.ts's clientErrorHandler, which logs
 * only the parser's code: its error also holds the raw bytes, Authorization
 * header included).
 */
export function clientErrorResponse(err: { code?: string }): string {
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are larger than the limit']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ code: 'INVALID_REQUEST', message } satisfies ApiError);
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Unknown routes answer in the same shape (after auth, so they reveal nothing to strangers). */
export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return handleError(apiError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), request, reply);
}
