import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../../shared/src/error-codes.js';
import { buildOpenApiDocument } from '../../../shared/src/openapi.js';

// The document is plain JSON (shared/src/openapi.ts builds it as Record<string, unknown>);
// the tests walk it by path and let expect judge what is found there.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** Every `$ref` anywhere in a JSON value. */
function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => refs(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

function resolve(doc: Json, pointer: string): unknown {
  expect(pointer.startsWith('#/')).toBe(true);
  return pointer
    .slice(2)
    .split('/')
    .reduce<Json | undefined>((node, part) => (node === undefined ? undefined : node[part.replace(/~1/g, '/').replace(/~0/g, '~')]), doc);
}

describe('buildOpenApiDocument', () => {
  const doc = buildOpenApiDocument('1.2.3') as Json;

  it('lists every error code, the event kinds and the phase names', () => {
    const codeOf = (schema: string): unknown => {
      const props = (doc.components.schemas[schema] as Json).properties as Json;
      const code = props.code as Json;
      return code.enum ?? (resolve(doc, code.$ref as string) as Json).enum;
    };
    expect(codeOf('ApiError')).toEqual([...ERROR_CODES]);
    expect(codeOf('ErrorResult')).toEqual([...ERROR_CODES]);
    const event = doc.components.schemas.WorkspaceEvent as Json;
    const variants = (event.oneOf ?? event.anyOf) as Json[];
    const types = variants.map((v) => (v.properties as Json).type.const);
    expect(types.sort()).toEqual(['log', 'note', 'outcome', 'phase-end', 'phase-start', 'push']);
    const phaseStart = variants.find((v) => (v.properties as Json).type.const === 'phase-start')!;
    const phase = (phaseStart.properties as Json).phase as Json;
    expect((phase.enum ?? (resolve(doc, phase.$ref as string) as Json).enum) as string[]).toContain('exact-from-moving');
  });

  it('is an OpenAPI 3.1 document with the agent version', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe('1.2.3');
    expect(doc.components.securitySchemes.bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
  });

  it('has every route, /health without security', () => {
    const ops = Object.entries(doc.paths as Json).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`));
    expect(ops.sort()).toEqual(
      [
        'GET /health',
        'GET /readyz',
        'GET /metrics',
        'GET /v1/openapi.json',
        'POST /v1/workspaces',
        'GET /v1/workspaces',
        'GET /v1/workspaces/{id}',
        'DELETE /v1/workspaces/{id}',
        'GET /v1/workspaces/{id}/events',
        'POST /v1/machines',
        'GET /v1/machines',
        'GET /v1/machines/cache',
        'DELETE /v1/machines/{name}',
        'POST /v1/machines/{name}/snapshots',
        'GET /v1/machines/{name}/snapshots',
        'GET /v1/machines/{name}/snapshots/{snapshot}',
        'DELETE /v1/machines/{name}/snapshots/{snapshot}',
        'POST /v1/machines/{name}/snapshots/{snapshot}/restore',
        'GET /v1/jobs',
        'GET /v1/jobs/{jobId}',
        'GET /v1/jobs/{jobId}/events',
        'POST /v1/snapshots',
        'GET /v1/snapshots',
        'DELETE /v1/snapshots',
        'POST /v1/snapshots/restore',
        'POST /v1/images',
        'GET /v1/images',
        'DELETE /v1/images/{name}',
        'POST /v1/prebuilds',
        'GET /v1/prebuilds/{id}',
      ].sort(),
    );
    expect(doc.paths['/health'].get.security).toEqual([]);
    const ids = Object.values(doc.paths as Json).flatMap((item) => Object.values(item as Json).map((op: Json) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('resolves every $ref to a component', () => {
    const all = refs(doc);
    expect(all.length).toBeGreaterThan(10);
    for (const r of all) expect(resolve(doc, r), r).toBeTypeOf('object');
    for (const schema of Object.values(doc.components.schemas as Json)) {
      expect(schema).not.toHaveProperty('$schema');
      expect(schema).not.toHaveProperty('$id');
    }
  });

  it('describes the request and responses of POST /v1/workspaces from the zod schemas', () => {
    const post = doc.paths['/v1/workspaces'].post;
    expect(post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateWorkspaceBody' });
    expect(post.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/WorkspaceView' });
    expect(Object.keys(post.responses).sort()).toEqual(['200', '202', '400', '401', '403', '409', '413', '415', '422', '500', '503', '507']);
    expect(post.responses['409'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ApiError' });

    const body = doc.components.schemas.CreateWorkspaceBody;
    expect(body.type).toBe('object');
    expect(body.required).toEqual(['id', 'repository']);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.cache.additionalProperties).toBe(false);
    expect(body.properties.callback.additionalProperties).toBe(false);
    expect(body.properties.id).toEqual({ $ref: '#/components/schemas/WorkspaceId' });
    expect(doc.components.schemas.WorkspaceId.pattern).toBe('^[a-z0-9][a-z0-9-]{0,62}$');
  });

  it('documents repeats of POST /v1/workspaces: the Idempotency-Key header, 200 with the existing workspace, 409 and 422', () => {
    const post = doc.paths['/v1/workspaces'].post;
    expect(post.parameters).toEqual([expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: false })]);
    expect(post.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ExistingWorkspaceView' });
    const existing = doc.components.schemas.ExistingWorkspaceView;
    expect(existing.properties.existing).toEqual({ type: 'boolean', const: true });
    expect(existing.required).toEqual(expect.arrayContaining(['existing', 'id', 'status']));
    expect(post.responses['422'].description).toContain('IDEMPOTENCY_KEY_REUSED');
    expect(post.responses['409'].description).toContain('IDEMPOTENCY_KEY_IN_USE');
    expect(post.description).toContain('Idempotency-Key');
  });

  it('documents seq on every event, the after query and the keepalive line of the events stream', () => {
    const events = doc.paths['/v1/workspaces/{id}/events'].get;
    expect(events.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(['path:id', 'query:after']);
    expect(events.parameters[1].required).toBe(false);
    expect(events.responses['200'].content['application/x-ndjson'].schema).toEqual({
      oneOf: [{ $ref: '#/components/schemas/WorkspaceEvent' }, { $ref: '#/components/schemas/EventStreamKeepalive' }],
    });
    expect(events.description).toContain('keepalive');
    const event = doc.components.schemas.WorkspaceEvent as Json;
    for (const variant of (event.oneOf ?? event.anyOf) as Json[]) {
      expect(variant.required).toContain('seq');
      expect(variant.properties.seq).toMatchObject({ type: 'integer', exclusiveMinimum: 0 });
    }
    expect(doc.components.schemas.EventStreamKeepalive).toMatchObject({ properties: { type: { const: 'keepalive' } }, required: ['type'] });
  });

  it('documents the id path parameter and the purge query', () => {
    const del = doc.paths['/v1/workspaces/{id}'].delete;
    expect(del.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(['path:id', 'query:purge']);
    expect(doc.paths['/v1/workspaces/{id}/events'].get.responses['200'].content).toHaveProperty('application/x-ndjson');
  });

  it('machine and image creation are accepted jobs: 202 with Location, the job and its events under /v1/jobs/{jobId}', () => {
    for (const [path, view] of [
      ['/v1/machines', 'MachineJobView'],
      ['/v1/images', 'ImageJobView'],
    ] as const) {
      const post = doc.paths[path].post;
      expect(Object.keys(post.responses)).not.toContain('201');
      expect(post.responses['202'].content['application/json'].schema).toEqual({ $ref: `#/components/schemas/${view}` });
      expect(post.responses['202'].headers.Location.schema).toEqual({ type: 'string' });
      expect(post.responses['507'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ApiError' });
    }
    const job = doc.components.schemas.JobView as Json;
    const kinds = ((job.oneOf ?? job.anyOf) as Json[]).map((v) => (resolve(doc, v.$ref as string) as Json).properties.kind.const);
    expect(kinds.sort()).toEqual(['image', 'machine']);
    const status = doc.components.schemas.JobStatus as Json;
    expect(status.enum).toEqual(['running', 'done', 'failed']);
    const get = doc.paths['/v1/jobs/{jobId}'].get;
    expect(get.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(['path:jobId']);
    expect(Object.keys(get.responses).sort()).toEqual(['200', '400', '401', '404', '500']);
    const events = doc.paths['/v1/jobs/{jobId}/events'].get;
    expect(events.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(['path:jobId', 'query:after']);
    expect(events.responses['200'].content['application/x-ndjson'].schema).toEqual({
      oneOf: [{ $ref: '#/components/schemas/JobEvent' }, { $ref: '#/components/schemas/EventStreamKeepalive' }],
    });
    const variants = ((doc.components.schemas.JobEvent as Json).oneOf ?? (doc.components.schemas.JobEvent as Json).anyOf) as Json[];
    expect(variants.map((v) => (v.properties as Json).type.const).sort()).toEqual(['note', 'phase-end', 'phase-start', 'push', 'status']);
  });

  it('snapshots live under their machine; the query-parameter routes are marked deprecated', () => {
    const item = doc.paths['/v1/machines/{name}/snapshots/{snapshot}'];
    expect(item.get.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(['path:name', 'path:snapshot', 'query:backend']);
    const create = doc.paths['/v1/machines/{name}/snapshots'].post;
    expect(create.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateSnapshotBody' });
    expect(create.responses['201'].headers.Location).toBeDefined();
    expect(doc.components.schemas.CreateSnapshotBody.additionalProperties).toBe(false);
    expect(Object.keys(doc.paths['/v1/machines/{name}/snapshots/{snapshot}/restore'].post.responses)).toEqual(
      expect.arrayContaining(['200', '404', '409', '501']),
    );
    const deprecated = Object.entries(doc.paths as Json).flatMap(([p, ops]) =>
      Object.entries(ops as Json)
        .filter(([, op]) => (op as Json).deprecated === true)
        .map(([m]) => `${m.toUpperCase()} ${p}`),
    );
    expect(deprecated.sort()).toEqual(['DELETE /v1/snapshots', 'GET /v1/snapshots', 'POST /v1/snapshots', 'POST /v1/snapshots/restore']);
  });

  it('keeps response objects open to fields added later', () => {
    expect(doc.components.schemas.WorkspaceView.additionalProperties).toBeUndefined();
    expect(doc.components.schemas.WorkspaceView.properties.status).toEqual({ $ref: '#/components/schemas/WorkspaceStatus' });
  });
});
