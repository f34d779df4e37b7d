import { describe, expect, it } from 'vitest';
import { WorkspaceList, WorkspaceView } from '../../../shared/src/api.js';
import { AUTH, JSON_AUTH, testServer, validBody } from './harness.js';

const post = (app: ReturnType<typeof testServer>['app'], payload: unknown, headers: Record<string, string> = JSON_AUTH) =>
  app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

describe('POST /v1/workspaces', () => {
  it('202 with the queued workspace view, the body handed to the job manager as parsed', async () => {
    const { app, jobs } = testServer();
    const res = await post(app, validBody('ws-1'));
    expect(res.statusCode).toBe(202);
    const view = WorkspaceView.parse(res.json());
    expect(view).toMatchObject({ id: 'ws-1', repository: 'octo/hello', status: 'queued', configName: null });
    expect(jobs.submitted).toEqual([validBody('ws-1')]);
    expect(res.body).not.toContain('registry-password-123');
  });

  it('409 WORKSPACE_EXISTS for an id already there with another body (the same body is a repeat: idempotency.test.ts)', async () => {
    const { app } = testServer();
    expect((await post(app, validBody('dup'))).statusCode).toBe(202);
    const res = await post(app, { ...validBody('dup'), lightweight: true });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ code: 'WORKSPACE_EXISTS', message: 'workspace dup exists' });
  });

  it('202 again for an id that failed or was deleted without purge (as the real job manager); while ready 200 for a repeat, 409 for another body; 409 for another repository', async () => {
    const { app, jobs } = testServer();
    expect((await post(app, validBody('again'))).statusCode).toBe(202);
    jobs.finish('again', 'failed');
    const afterFailure = await post(app, validBody('again'));
    expect(afterFailure.statusCode).toBe(202);
    expect(afterFailure.json()).toMatchObject({ id: 'again', status: 'queued', error: null });

    jobs.finish('again', 'ready');
    expect((await post(app, validBody('again'))).statusCode).toBe(200);
    expect((await post(app, { ...validBody('again'), configName: 'other' })).statusCode).toBe(409);
    const deleted = await app.inject({ method: 'DELETE', url: '/v1/workspaces/again', headers: AUTH });
    expect(deleted.json()).toMatchObject({ id: 'again', status: 'deleting' });
    const afterDelete = await post(app, validBody('again'));
    expect(afterDelete.statusCode).toBe(202);
    expect(afterDelete.json()).toMatchObject({ id: 'again', status: 'queued' });

    jobs.finish('again', 'failed');
    const other = await post(app, { ...validBody('again'), repository: 'octo/other' });
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: 'WORKSPACE_CONFLICT' });
    expect(jobs.submitted.map((b) => b.id)).toEqual(['again', 'again', 'again']);
  });

  it('400 listing every field error', async () => {
    const { app, jobs } = testServer();
    const res = await post(app, { id: 'Bad_Id', repository: '', cache: { registry: 42 } });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.code).toBe('INVALID_REQUEST');
    expect(body.message).toEqual(expect.any(String));
    expect(body.validations).toHaveLength(3);
    expect(body.validations.map((v: { field: string }) => v.field).sort()).toEqual(['cache.registry', 'id', 'repository']);
    for (const v of body.validations) expect(v.message).toEqual(expect.any(String));
    expect(jobs.submitted).toEqual([]);
  });

  it('400 for an unknown property, at any depth, named in the field', async () => {
    const { app } = testServer();
    const res = await post(app, { ...validBody(), extra: true, cache: { registry: 'ghcr.io', pasword: 'x' } });
    expect(res.statusCode).toBe(400);
    const fields = res.json().validations.map((v: { field: string; message: string }) => `${v.field}: ${v.message}`);
    expect(fields.sort()).toEqual(['cache.pasword: unknown field', 'extra: unknown field']);
  });

  it('400 for a callback URL that is not http(s), and for a non-object body', async () => {
    const { app } = testServer();
    const res = await post(app, { ...validBody(), callback: { url: 'ftp://cp.example', token: 't' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().validations).toEqual([{ field: 'callback.url', message: 'must be an http(s) URL' }]);
    const arr = await post(app, [1, 2]);
    expect(arr.statusCode).toBe(400);
    expect(arr.json().validations).toEqual([{ field: 'body', message: expect.any(String) }]);
  });

  it('400 INVALID_JSON for a body that is not JSON, or empty', async () => {
    const { app } = testServer();
    const bad = await post(app, '{"id": "ws-1",');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ code: 'INVALID_JSON', message: 'the body is not valid JSON' });
    const empty = await post(app, '');
    expect(empty.statusCode).toBe(400);
    expect(empty.json().code).toBe('INVALID_JSON');
  });

  it('413 PAYLOAD_TOO_LARGE for a body over 64 KiB', async () => {
    const { app, jobs } = testServer();
    const res = await post(app, { ...validBody(), repository: 'x'.repeat(65 * 1024) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ code: 'PAYLOAD_TOO_LARGE', message: 'the body is larger than the limit' });
    expect(jobs.submitted).toEqual([]);
  });

  it('415 for any Content-Type but application/json, or none', async () => {
    const { app } = testServer();
    const text = await post(app, JSON.stringify(validBody()), { ...AUTH, 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toEqual({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' });
    const none = await app.inject({ method: 'POST', url: '/v1/workspaces', headers: AUTH });
    expect(none.statusCode).toBe(415);
    const charset = await post(app, validBody(), { ...AUTH, 'content-type': 'application/json; charset=utf-8' });
    expect(charset.statusCode).toBe(202);
  });

  it('503 SHUTTING_DOWN once the job manager stops accepting', async () => {
    const { app, jobs } = testServer();
    jobs.stopAccepting();
    const res = await post(app, validBody());
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('SHUTTING_DOWN');
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.json().status).toBe('shutting-down');
  });
});

describe('GET and DELETE /v1/workspaces', () => {
  it('lists and reads workspaces; 404 for an unknown id; 400 for an invalid id', async () => {
    const { app } = testServer();
    await post(app, validBody('a'));
    await post(app, validBody('b'));
    const list = await app.inject({ method: 'GET', url: '/v1/workspaces', headers: AUTH });
    expect(list.statusCode).toBe(200);
    expect(WorkspaceList.parse(list.json()).workspaces.map((w) => w.id)).toEqual(['a', 'b']);

    const one = await app.inject({ method: 'GET', url: '/v1/workspaces/b', headers: AUTH });
    expect(WorkspaceView.parse(one.json()).id).toBe('b');

    const missing = await app.inject({ method: 'GET', url: '/v1/workspaces/nope', headers: AUTH });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ code: 'WORKSPACE_NOT_FOUND', message: 'no workspace nope' });

    const invalid = await app.inject({ method: 'GET', url: '/v1/workspaces/Not_Valid', headers: AUTH });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ code: 'INVALID_REQUEST', validations: [{ field: 'id' }] });
  });

  it('DELETE returns the view; purge=true removes the record; purge must be true or false', async () => {
    const { app } = testServer();
    await post(app, validBody('a'));
    const keep = await app.inject({ method: 'DELETE', url: '/v1/workspaces/a', headers: AUTH });
    expect(keep.statusCode).toBe(200);
    expect(keep.json().id).toBe('a');
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/a', headers: AUTH })).statusCode).toBe(200);

    const bad = await app.inject({ method: 'DELETE', url: '/v1/workspaces/a?purge=yes', headers: AUTH });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().validations).toEqual([{ field: 'purge', message: expect.any(String) }]);

    const purge = await app.inject({ method: 'DELETE', url: '/v1/workspaces/a?purge=true', headers: AUTH });
    expect(purge.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces/a', headers: AUTH })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/v1/workspaces/a', headers: AUTH })).statusCode).toBe(404);
  });
});

describe('errors nobody planned for', () => {
  it('500 with exactly {code: INTERNAL, message: internal error}: no stack, no message, no detail', async () => {
    const { app, jobs } = testServer();
    jobs.failWith = new Error('ENOENT: /var/lib/warmstart/secret-path');
    const res = await app.inject({ method: 'GET', url: '/v1/workspaces', headers: AUTH });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toStrictEqual({ code: 'INTERNAL', message: 'internal error' });
    expect(res.body).not.toContain('secret-path');
    expect(res.headers['x-request-id']).toEqual(expect.any(String));
  });
});
