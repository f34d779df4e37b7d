import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { WarmstartError } from '../../../agent/src/errors.js';
import { apiError, statusForCode, toHttpError } from '../../../agent/src/server/http-error.js';

describe('statusForCode', () => {
  it('maps by name, so codes added to errors.ts later map too', () => {
    expect(
      Object.fromEntries(
        [
          'INVALID_WORKSPACE_ID',
          'INVALID_REPOSITORY',
          'INVALID_SOMETHING_NEW',
          'WORKSPACE_CONFLICT',
          'WORKSPACE_EXISTS',
          'WORKSPACE_NOT_FOUND',
          'UNAUTHENTICATED',
          'FORBIDDEN',
          'PAYLOAD_TOO_LARGE',
          'SHUTTING_DOWN',
          'STATE_WRITE_FAILED',
          'DOCKER_UNAVAILABLE',
          'INTERNAL',
        ].map((c) => [c, statusForCode(c)]),
      ),
    ).toEqual({
      INVALID_WORKSPACE_ID: 400,
      INVALID_REPOSITORY: 400,
      INVALID_SOMETHING_NEW: 400,
      WORKSPACE_CONFLICT: 409,
      WORKSPACE_EXISTS: 409,
      WORKSPACE_NOT_FOUND: 404,
      UNAUTHENTICATED: 401,
      FORBIDDEN: 403,
      PAYLOAD_TOO_LARGE: 413,
      SHUTTING_DOWN: 503,
      STATE_WRITE_FAILED: 507,
      DOCKER_UNAVAILABLE: 500,
      INTERNAL: 500,
    });
  });
});

describe('toHttpError', () => {
  it('gives a WarmstartError its status, code, message and detail, never its cause', () => {
    const err = new WarmstartError('INVALID_REPOSITORY', 'not a repository', { detail: 'ftp://x', cause: new Error('inner secret') });
    expect(toHttpError(err)).toEqual({ status: 400, body: { code: 'INVALID_REPOSITORY', message: 'not a repository', detail: 'ftp://x' } });
    expect(toHttpError(apiError('SHUTTING_DOWN', 'bye'))).toEqual({ status: 503, body: { code: 'SHUTTING_DOWN', message: 'bye' } });
  });

  it('answers anything else with a bare 500', () => {
    const bare = { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };
    expect(toHttpError(new Error('disk /secret full'))).toEqual(bare);
    expect(toHttpError(Object.assign(new Error('x'), { statusCode: 400, code: 'ECONNRESET' }))).toEqual(bare);
    expect(toHttpError('a string')).toEqual(bare);
    expect(toHttpError(null)).toEqual(bare);
    // A ZodError is a 400 only when fastify's request validation raised it.
    const parsed = z.object({ a: z.string() }).safeParse({});
    expect(toHttpError(parsed.error)).toEqual(bare);
    expect(toHttpError(Object.assign(parsed.error!, { validationContext: 'body' }))).toEqual({
      status: 400,
      body: { code: 'INVALID_REQUEST', message: 'invalid request body', validations: [{ field: 'a', message: expect.any(String) }] },
    });
  });
});
