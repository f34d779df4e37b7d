import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import { z } from 'zod';

/** One field error of a 400 reply. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * Every issue of a failed parse as `{field, message}`: the dotted path, and
 * one entry per unknown key (zod reports them together at the parent).
 * zod's messages name types and limits, never the value sent.
 */
export function validationsOf(err: z.ZodError, context: string): FieldError[] {
  return err.issues.flatMap((issue): FieldError[] => {
    const at = (path: readonly PropertyKey[]): string => (path.length === 0 ? context : path.map(String).join('.'));
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: at([...issue.path, key]), message: 'unknown field' }));
    }
    return [{ field: at(issue.path), message: issue.message }];
  });
}

/**
 * Route schemas are zod schemas: fastify runs them before the handler, which
 * then sees only parsed, valid input. A failure reaches the error handler as
 * the ZodError itself (fastify adds `validationContext`: body, params, ...).
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    return result.success ? { value: result.data } : { error: result.error };
  };
};

/**
 * Responses are plain JSON: no route declares a response schema, so this is
 * what fastify would be handed for one (app.ts: in place of its
 * fast-json-stringify compiler, which is then never loaded).
 */
export const jsonSerializerCompiler: FastifySerializerCompiler<unknown> = () => (data: unknown) => JSON.stringify(data);
