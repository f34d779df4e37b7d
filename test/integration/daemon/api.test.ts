/**
 * Acceptance (issue 3): the whole API of `warmstart serve` over real HTTP,
 * against the process as systemd would run it, with the real engine,
 * registry and devcontainers CLI behind it.
 *
 * - auth: /health is public; every other route is 401 (WWW-Authenticate:
 *   Bearer) without a token, with a wrong one, with Basic auth; JWTs from a
 *   real JWKS endpoint: good → 200, wrong audience / issuer, expired, bad
 *   signature → 401, a workspace claim for another workspace → 403;
 * - input: 400 listing every field error, unknown field, malformed JSON,
 *   413 over 64 KiB, local repositories refused unless allowed;
 * - lifecycle: 202 queued → ready with the cache ref `warmstart cache ref`
 *   prints and the push done; a repeated POST (same body, or the same
 *   Idempotency-Key) answered 200 with the existing workspace, another body
 *   409, the key with another body 422; list; 404; DELETE ?purge=true;
 * - after a wipe, a daemon job and a CLI `up` of the same repository give
 *   the same cache result, and the daemon's view carries every field of the
 *   CLI's JSON result;
 * - the events stream of a running job: every phase with its duration, then
 *   the outcome, then the end of the stream; numbered on across two runs of
 *   one id, and resumed after a disconnect with `?after=` without a
 *   duplicate or a gap;
 * - /v1/openapi.json, /metrics; no secret in the output or the state dir.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../../support/cli.js';
import { cleanUp, containersWithLabel, readFromVolume, volumeExists, wipeImages } from '../../support/docker.js';
import { missExactTag } from '../../support/config-edit.js';
import { makeRepo, runId } from '../../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';
import { expectedCacheRef } from '../../support/cache-ref.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';

const tb = loadTestbed();
const run = runId('dapi');
const namespace = `warmstart-test/${run}`;
const cacheRegistry = `${tb.registry}/${namespace}`;
const ids = { first: `${run}-a`, second: `${run}-b`, cli: `${run}-cli`, kept: `${run}-kept`, noCache: `${run}-nc`, noPush: `${run}-np` };
const AUDIENCE = `warmstart-agent-${run}`;
const ISSUER = `https://control-plane.test/${run}`;
const KID = 'test-key-1';

type View = Record<string, unknown> & {
  status: string;
  profile: string | null;
  cache: Record<string, unknown> & { ref: string | null; hit: string; stepsCached: number | null; stepsTotal: number | null };
  push: Record<string, unknown> & { status: string; ref: string | null };
  timings: Record<string, number>;
};
type Ev = { ts: string; workspaceId: string; seq: number; type: string; phase?: string; ms?: number; status?: string; text?: string };

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

/** A POST with an Idempotency-Key. */
const keyed = (body: unknown, key: string): RequestInit => ({
  ...json(body),
  headers: { 'content-type': 'application/json', 'idempotency-key': key },
});

/**
 * Reads an events stream line by line; `stop` is asked after each event (keepalive lines are skipped) and
 * ends the read by hanging up. Resolves with the events read and whether the stream ended by itself.
 */
async function readEvents(res: Response, stop: (e: Ev, all: Ev[]) => boolean = () => false): Promise<{ events: Ev[]; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: Ev[] = [];
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { events, ended: true };
    buffered += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() === '') continue;
      const e = JSON.parse(line) as Ev;
      if (e.type === 'keepalive') continue;
      events.push(e);
      if (stop(e, events)) {
        await reader.cancel();
        return { events, ended: false };
      }
    }
  }
}

/** Every file under dir, recursively (symlinks not followed). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The tags of a ref's repository in the testbed's registry, sorted. */
async function registryTags(ref: string): Promise<string[]> {
  const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
  return (await createOciApi().listTags(ref.slice(0, ref.lastIndexOf(':')), creds)).sort();
}

/** Polls until the background push has settled (status no longer `pending`). */
async function waitForPush(agent: Agent, id: string, timeoutMs = 120_000): Promise<View> {
  const deadline = Date.now() + timeoutMs;
  let last: View | null = null;
  while (Date.now() < deadline) {
    last = (await (await agent.request(`/v1/workspaces/${id}`)).json()) as View;
    if (last.push && last.push.status !== 'pending') return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`push of ${id} did not settle: ${JSON.stringify(last)}`);
}

describe('warmstart serve: the HTTP API (real process, engine, registry)', () => {
  let env: Record<string, string>;
  let agent: Agent;
  let repo: string;
  let cacheRef: string;

  // JWT side: a JWKS endpoint on loopback and a second agent that trusts only it.
  let jwks: Server;
  let jwksHits = 0;
  let jwtAgent: Agent;
  let jwtEnv: Record<string, string>;
  let signingKey: CryptoKey;
  let otherKey: CryptoKey;

  beforeAll(async () => {
    repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'Acme', name: `Api-Small-${run}` });
    const printed = await runCli(['cache', 'ref', repo, '--cache-registry', cacheRegistry]);
    expect(printed.code, printed.stderr).toBe(0);
    cacheRef = printed.stdout.trim();
    expect(cacheRef).toBe(expectedCacheRef(cacheRegistry, repo));
    expect(cacheRef).toMatch(new RegExp(`/local/[0-9a-f]{8}/acme/api-small-${run}:devcontainer-cache$`));

    env = await testEnv(tb.baseImage);
    agent = await startAgent(env);

    const pair = await generateKeyPair('RS256');
    signingKey = pair.privateKey;
    otherKey = (await generateKeyPair('RS256')).privateKey;
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
    jwks = createServer((req, res) => {
      jwksHits += 1;
      if (req.url === '/.well-known/jwks.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    jwtEnv = await testEnv(tb.baseImage);
    jwtAgent = await startAgent(jwtEnv, {
      env: {
        // No token file (startAgent writes one; an empty setting is "unset"): JWTs only.
        WARMSTART_API_TOKEN_FILE: '',
        WARMSTART_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/.well-known/jwks.json`,
        WARMSTART_JWT_AUDIENCE: AUDIENCE,
        WARMSTART_JWT_ISSUER: ISSUER,
        // Local repositories refused: the default for a real node.
        WARMSTART_ALLOW_LOCAL_REPOS: '',
      },
    });
  });

  afterAll(async () => {
    await agent?.term();
    await jwtAgent?.term();
    await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs: cacheRef ? [cacheRef] : [] });
  });

  const jwt = (claims: Record<string, unknown> = {}, o: { aud?: string; iss?: string; exp?: number; key?: CryptoKey } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
      .setSubject('control-plane')
      .setAudience(o.aud ?? AUDIENCE)
      .setIssuer(o.iss ?? ISSUER)
      .setIssuedAt()
      .setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 300)
      .sign(o.key ?? signingKey);

  it('/health is public and says ok, the version and the uptime', async () => {
    const r = await agent.request('/health', { auth: null });
    expect(r.status).toBe(200);
    const body = (await r.json()) as Record<string, unknown>;
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(body).toEqual({ status: 'ok', version: pkg.version, uptimeSeconds: expect.any(Number) });
    expect(body.uptimeSeconds as number).toBeGreaterThanOrEqual(0);
  });

  it('every other route is 401 without a token, with a wrong one, with Basic auth', async () => {
    const routes: Array<[string, string, RequestInit?]> = [
      ['GET', '/v1/workspaces'],
      ['POST', '/v1/workspaces', json({ id: `${run}-nope`, repository: repo })],
      ['GET', `/v1/workspaces/${run}-nope`],
      ['DELETE', `/v1/workspaces/${run}-nope?purge=true`],
      ['GET', `/v1/workspaces/${run}-nope/events`],
      ['GET', '/v1/openapi.json'],
      ['GET', '/metrics'],
      ['GET', '/no-such-route'],
    ];
    const wrongAuth: Array<string | null> = [
      null,
      'Bearer wrong-token-0123456789abcdef',
      `Bearer ${agent.token}x`,
      `Bearer ${agent.token.slice(0, -1)}`,
      `Basic ${Buffer.from(`warmstart:${agent.token}`).toString('base64')}`,
      agent.token, // no scheme
      'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', // a JWT on an agent without JWKS
    ];
    for (const [method, path, init] of routes) {
      for (const auth of wrongAuth) {
        const r = await agent.request(path, { ...init, method, auth });
        const text = await r.text();
        expect(r.status, `${method} ${path} with ${auth === null ? 'no auth' : auth.slice(0, 12)}`).toBe(401);
        expect(r.headers.get('www-authenticate')).toBe('Bearer');
        expect(JSON.parse(text)).toMatchObject({ code: 'UNAUTHENTICATED' });
        expect(text).not.toContain(agent.token);
      }
    }
    // Nothing was created by the refused POSTs.
    expect((await agent.request(`/v1/workspaces/${run}-nope`)).status).toBe(404);
  });

  it('JWT auth: a good token passes; wrong audience, issuer, expired, bad signature are 401; another workspace is 403', async () => {
    const get = (token: string, path = '/v1/workspaces') => jwtAgent.request(path, { auth: `Bearer ${token}` });

    const good = await get(await jwt());
    expect(good.status).toBe(200);
    expect(await good.json()).toEqual({ workspaces: [] });
    expect(jwksHits).toBeGreaterThan(0); // the keys really came from the JWKS URL

    const now = Math.floor(Date.now() / 1000);
    const bad: Array<[string, string]> = [
      ['wrong audience', await jwt({}, { aud: 'someone-else' })],
      ['wrong issuer', await jwt({}, { iss: 'https://evil.test/' })],
      ['expired', await jwt({}, { exp: now - 60 })],
      ['signed by another key (same kid)', await jwt({}, { key: otherKey })],
      ['the static token of the other agent', agent.token],
    ];
    for (const [what, token] of bad) {
      const r = await get(token);
      expect(r.status, what).toBe(401);
      expect(r.headers.get('www-authenticate'), what).toBe('Bearer');
    }

    // A token scoped to one workspace: another id in the path is 403, its own passes auth (then 404: none yet).
    const scoped = await jwt({ workspace: `${run}-mine` });
    const other = await get(scoped, `/v1/workspaces/${run}-theirs`);
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ code: 'FORBIDDEN' });
    expect((await get(scoped, `/v1/workspaces/${run}-theirs/events`)).status).toBe(403);
    expect((await get(scoped, `/v1/workspaces/${run}-mine`)).status).toBe(404);
    const post = await jwtAgent.request('/v1/workspaces', {
      ...json({ id: `${run}-theirs`, repository: 'https://github.com/acme/x.git' }),
      auth: `Bearer ${scoped}`,
    });
    expect(post.status).toBe(403);
    expect((await get(await jwt(), `/v1/workspaces/${run}-theirs`)).status).toBe(404);
  });

  it('bad input: 400 listing every field error, unknown field, malformed JSON; 413 over 64 KiB', async () => {
    const three = await agent.request('/v1/workspaces', json({ id: 'Not_Valid!', repository: '', lightweight: 'yes' }));
    expect(three.status).toBe(400);
    const body = (await three.json()) as { code: string; validations: Array<{ field: string; message: string }> };
    expect(body.code).toBe('INVALID_REQUEST');
    expect(body.validations.map((v) => v.field).sort()).toEqual(['id', 'lightweight', 'repository']);
    for (const v of body.validations) expect(v.message).not.toBe('');

    const unknown = await agent.request('/v1/workspaces', json({ id: `${run}-u`, repository: repo, colour: 'blue' }));
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ validations: [{ field: 'colour', message: 'unknown field' }] });

    const nested = await agent.request('/v1/workspaces', json({ id: `${run}-u`, repository: repo, cache: { registry: 'x', pasword: 'y' } }));
    expect(nested.status).toBe(400);
    expect(await nested.json()).toMatchObject({ validations: [{ field: 'cache.pasword' }] });

    const malformed = await agent.request('/v1/workspaces', json(`{"id": "${run}-m", "repository": `));
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'INVALID_JSON' });

    const big = await agent.request('/v1/workspaces', json({ id: `${run}-big`, repository: repo, configName: 'x'.repeat(70 * 1024) }));
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });

    // Nothing of any of them exists.
    const list = (await (await agent.request('/v1/workspaces')).json()) as { workspaces: unknown[] };
    expect(list.workspaces).toEqual([]);
  });

  it('local repositories are refused unless WARMSTART_ALLOW_LOCAL_REPOS=1', async () => {
    const token = await jwt();
    for (const repository of [repo, `file://${repo}`]) {
      const r = await jwtAgent.request('/v1/workspaces', { ...json({ id: `${run}-local`, repository }), auth: `Bearer ${token}` });
      expect(r.status, repository).toBe(400);
      expect(await r.json()).toMatchObject({ code: 'INVALID_REPOSITORY' });
    }
    expect((await jwtAgent.request(`/v1/workspaces/${run}-local`, { auth: `Bearer ${token}` })).status).toBe(404);
    expect(await volumeExists(`warmstart-ws-${run}-local`)).toBe(false);
  });

  it('202 then ready with the cache ref the CLI prints and the cache pushed; a repeated POST 200 with the workspace, another body 409, the key reused 422; list; 404; DELETE ?purge=true', async () => {
    const body = {
      id: ids.first,
      repository: repo,
      cache: { registry: cacheRegistry, username: tb.registryUser, password: tb.registryPassword },
    };
    const created = await agent.request('/v1/workspaces', keyed(body, `${run}-first-post`));
    expect(created.status).toBe(202);
    const accepted = (await created.json()) as View;
    expect(accepted.id).toBe(ids.first);
    expect(['queued', 'creating']).toContain(accepted.status);
    expect(accepted).not.toHaveProperty('existing');
    expect(JSON.stringify(accepted)).not.toContain(tb.registryPassword);

    // The same body again (keys in another order, no key): the workspace there is the answer, not a second job.
    const reordered = { cache: body.cache, repository: body.repository, id: body.id };
    const dup = await agent.request('/v1/workspaces', json(reordered));
    expect(dup.status).toBe(200);
    expect(await dup.json()).toMatchObject({ id: ids.first, existing: true, createdAt: accepted.createdAt });
    // Another body for the id is still refused; the key with another body is 422.
    const other = await agent.request('/v1/workspaces', json({ ...body, lightweight: true }));
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ code: 'WORKSPACE_EXISTS' });
    const reused = await agent.request('/v1/workspaces', keyed({ ...body, noPush: true }, `${run}-first-post`));
    expect(reused.status).toBe(422);
    expect(await reused.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });

    const ready = (await waitForStatus(agent, ids.first, ['ready', 'recovery', 'failed'])) as View;
    expect(ready.status, JSON.stringify(ready.error)).toBe('ready');
    expect(ready.profile).toBe('devcontainer');
    expect(ready.cache).toMatchObject({ ref: cacheRef, hit: 'miss' });
    expect(String(ready.cache.reason)).toMatch(/CACHE_IMAGE_MISSING/);
    expect(ready.containerId).toEqual(expect.any(String));
    const settled = await waitForPush(agent, ids.first);
    expect(settled.push).toMatchObject({ status: 'pushed', ref: cacheRef, reason: null });

    // After ready a repeat (by its key) is answered with the ready workspace, still not a second job.
    const later = await agent.request('/v1/workspaces', keyed(body, `${run}-first-post`));
    expect(later.status).toBe(200);
    expect(await later.json()).toMatchObject({ id: ids.first, status: 'ready', existing: true, push: { status: 'pushed' } });

    const list = (await (await agent.request('/v1/workspaces')).json()) as { workspaces: View[] };
    expect(list.workspaces.map((w) => w.id)).toEqual([ids.first]);
    expect(list.workspaces[0]).toMatchObject({ status: 'ready', cache: { ref: cacheRef } });

    expect((await agent.request(`/v1/workspaces/${run}-unknown`)).status).toBe(404);
    expect(await (await agent.request(`/v1/workspaces/${run}-unknown`)).json()).toMatchObject({ code: 'WORKSPACE_NOT_FOUND' });
    expect((await agent.request(`/v1/workspaces/${run}-unknown`, { method: 'DELETE' })).status).toBe(404);

    expect(await containersWithLabel(`warmstart.workspace=${ids.first}`)).not.toEqual([]);
    expect(await volumeExists(`warmstart-ws-${ids.first}`)).toBe(true);
    const del = await agent.request(`/v1/workspaces/${ids.first}?purge=true`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await containersWithLabel(`warmstart.workspace=${ids.first}`)).toEqual([]);
    expect(await volumeExists(`warmstart-ws-${ids.first}`)).toBe(false);
    expect(await stat(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids.first)).catch(() => null)).toBeNull();
    expect((await agent.request(`/v1/workspaces/${ids.first}`)).status).toBe(404);
  });

  it('after a wipe, the daemon and the CLI give the same cache result; the events stream holds every phase', async () => {
    // A node that never saw the repository: only the registry has it, and
    // a config whose exact key was never pushed (the layer path; exact hits have their own test).
    await wipeImages(run, [cacheRef]);
    await missExactTag(repo);

    // The CLI, in the same situation.
    const cliEnv = await testEnv(tb.baseImage);
    const up = await runCli(
      [
        'up',
        repo,
        '--workspace-id',
        ids.cli,
        '--cache-registry',
        cacheRegistry,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      { env: cliEnv, input: `${tb.registryPassword}\n` },
    );
    expect(up.code, up.stderr).toBe(0);
    const cli = parseResult(up);
    expect(cli.outcome).toBe('ready');
    expect(cli.cache).toMatchObject({ ref: cacheRef, hit: 'layers', reason: null });
    await cleanUp({ runId: run, workspaceIds: [ids.cli], refs: [cacheRef] });
    await missExactTag(repo); // the CLI pushed an exact tag for the config as it was

    // The daemon, again from a wiped engine; its events followed from the 202 on.
    const created = await agent.request(
      '/v1/workspaces',
      json({ id: ids.second, repository: repo, cache: { registry: cacheRegistry, username: tb.registryUser, password: tb.registryPassword } }),
    );
    expect(created.status).toBe(202);
    const stream = await agent.request(`/v1/workspaces/${ids.second}/events`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const events: Ev[] = [];
    let statusAtFirstEvent: string | null = null;
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() === '') continue;
        events.push(JSON.parse(line) as Ev);
        if (statusAtFirstEvent === null) {
          statusAtFirstEvent = ((await (await agent.request(`/v1/workspaces/${ids.second}`)).json()) as View).status;
        }
      }
    }
    expect(buffered.trim()).toBe('');
    // Read while it ran; the stream ended once the job was over.
    expect(['queued', 'creating']).toContain(statusAtFirstEvent);
    const atEnd = (await (await agent.request(`/v1/workspaces/${ids.second}`)).json()) as View;
    expect(atEnd.status).toBe('ready');

    for (const e of events) expect(e.workspaceId).toBe(ids.second);
    const phases = ['clone', 'volume', 'config', 'pull', 'override', 'up'];
    for (const phase of phases) {
      const start = events.findIndex((e) => e.type === 'phase-start' && e.phase === phase);
      const end = events.findIndex((e) => e.type === 'phase-end' && e.phase === phase);
      expect(start, `phase-start ${phase}`).toBeGreaterThanOrEqual(0);
      expect(end, `phase-end ${phase}`).toBeGreaterThan(start);
    }
    const ends = events.filter((e) => e.type === 'phase-end');
    for (const e of ends) expect(typeof e.ms, `ms of ${e.phase}`).toBe('number');
    // Every phase that started also ended.
    expect(new Set(ends.map((e) => e.phase))).toEqual(new Set(events.filter((e) => e.type === 'phase-start').map((e) => e.phase)));
    const outcome = events.filter((e) => e.type === 'outcome');
    expect(outcome).toHaveLength(1);
    expect(outcome[0]).toMatchObject({ status: 'ready', ms: expect.any(Number) });
    expect(events.at(-1)!.type).toBe('outcome');
    expect(events.some((e) => e.type === 'log')).toBe(true); // build log lines come through too

    // Same cache result as the CLI, and every field of the CLI's result.
    const daemon = await waitForPush(agent, ids.second);

    // Once the job is over, the stream replays what was recorded (the push included) and ends.
    const replay = (await (await agent.request(`/v1/workspaces/${ids.second}/events`)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Ev);
    expect(replay.slice(0, events.length)).toEqual(events);
    expect(replay.find((e) => e.type === 'push')).toMatchObject({ status: 'pushed' });
    expect((await agent.request(`/v1/workspaces/${run}-unknown/events`)).status).toBe(404);
    expect(daemon.profile).toBe(cli.profile);
    expect(daemon.cache).toEqual(cli.cache);
    expect(daemon.cache.stepsTotal).toBeGreaterThan(0);
    expect(daemon.cache.stepsCached).toBe(daemon.cache.stepsTotal);
    expect(daemon.push).toMatchObject({ status: cli.push.status, ref: cli.push.ref, reason: cli.push.reason });
    expect(Object.keys(daemon.push).sort()).toEqual(Object.keys(cli.push).sort());
    expect(daemon.error).toBeNull();
    // The view carries the CLI's result under the same names, plus its lifecycle (status, id, ...).
    for (const key of Object.keys(cli)) expect(daemon, `view lacks ${key}`).toHaveProperty([key]);
    expect(daemon).toMatchObject({ outcome: cli.outcome, status: cli.outcome, workspaceId: ids.second, id: ids.second });
    expect(new Set(Object.keys(daemon.timings))).toEqual(new Set(Object.keys(cli.timings)));
  });

  it('serves the OpenAPI document and the metrics', async () => {
    const r = await agent.request('/v1/openapi.json');
    expect(r.status).toBe(200);
    const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of ['/health', '/metrics', '/v1/workspaces', '/v1/workspaces/{id}', '/v1/workspaces/{id}/events']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(Object.keys(doc.paths['/v1/workspaces']!)).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(doc.paths['/v1/workspaces/{id}']!)).toEqual(expect.arrayContaining(['get', 'delete']));

    const m = await agent.request('/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await m.text();
    expect(text).toContain('# TYPE warmstart_jobs_total counter');
    expect(text).toMatch(/^warmstart_jobs_total\{status="ready"\} 2$/m);
    expect(text).toMatch(/^warmstart_pushes_total\{status="pushed"\} 2$/m);
    expect(text).toMatch(/^warmstart_cache_total\{hit="layers",reason="none"\} 1$/m);
  });

  // After the metrics test, whose counts are of the jobs above.
  it('DELETE without purge keeps the volume; the same id posted again is prepared on it with the work kept; its events numbered on and resumed after a disconnect', async () => {
    const volume = `warmstart-ws-${ids.kept}`;
    const body = { id: ids.kept, repository: repo };
    expect((await agent.request('/v1/workspaces', json(body))).status).toBe(202);
    const first = (await waitForStatus(agent, ids.kept, ['ready', 'recovery', 'failed'])) as View;
    expect(first.status, JSON.stringify(first.error)).toBe('ready');
    // What a user did in the workspace: a file on its volume that no clone has.
    const wrote = await execa('docker', [
      'run',
      '--rm',
      '--label',
      `warmstart.test-run=${run}`,
      '-v',
      `${volume}:/v`,
      tb.baseImage,
      'sh',
      '-c',
      'echo unsaved-work > /v/notes.txt',
    ]);
    expect(wrote.exitCode).toBe(0);

    const del = await agent.request(`/v1/workspaces/${ids.kept}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await del.json()).toMatchObject({ id: ids.kept, status: 'deleting' });
    expect(await containersWithLabel(`warmstart.workspace=${ids.kept}`)).toEqual([]);
    expect(await volumeExists(volume)).toBe(true);
    expect(await (await agent.request(`/v1/workspaces/${ids.kept}`)).json()).toMatchObject({ status: 'deleting' });

    const firstRun = (await readEvents(await agent.request(`/v1/workspaces/${ids.kept}/events`))).events;
    const again = await agent.request('/v1/workspaces', json(body));
    expect(again.status, await again.clone().text()).toBe(202);

    // Follow the second run, hang up after a few events, come back with after=<last seq read>.
    const early = await readEvents(await agent.request(`/v1/workspaces/${ids.kept}/events`), (_e, read) => read.length === 3);
    expect(early.ended).toBe(false);
    const lastRead = early.events.at(-1)!.seq;
    const resumed = await agent.request(`/v1/workspaces/${ids.kept}/events?after=${lastRead}`);
    expect(resumed.status).toBe(200);
    const rest = await readEvents(resumed);
    expect(rest.ended).toBe(true);
    const second = (await waitForStatus(agent, ids.kept, ['ready', 'recovery', 'failed'])) as View;
    expect(second.status, JSON.stringify(second.error)).toBe('ready');
    // The run's numbers go on from the first run's; what was read twice over the two connections is exactly the run, once each.
    const read = [...early.events, ...rest.events];
    expect(read[0]!.seq).toBe(firstRun.at(-1)!.seq + 1);
    expect(read.map((e) => e.seq)).toEqual(read.map((_e, i) => read[0]!.seq + i));
    expect(read.at(-1)!.type).toBe('outcome');
    await waitForPush(agent, ids.kept);
    // The log, once the job has let go of the id (its push event is recorded after its live history closed).
    let stored: Ev[] = [];
    for (let tries = 0; tries < 40 && !stored.some((e) => e.type === 'push' && e.seq > read.at(-1)!.seq); tries++) {
      if (tries > 0) await new Promise((r) => setTimeout(r, 250));
      stored = (await readEvents(await agent.request(`/v1/workspaces/${ids.kept}/events?after=0`))).events;
    }
    expect(stored.slice(0, firstRun.length)).toEqual(firstRun);
    expect(stored.slice(firstRun.length, firstRun.length + read.length)).toEqual(read);
    // after= on a finished workspace: the log's rest (here the second run's push).
    const tail = (await readEvents(await agent.request(`/v1/workspaces/${ids.kept}/events?after=${read.at(-1)!.seq}`))).events;
    expect(tail).toEqual(stored.slice(firstRun.length + read.length));
    expect(tail.map((e) => e.type)).toContain('push');
    expect((await agent.request(`/v1/workspaces/${ids.kept}/events?after=-1`)).status).toBe(400);

    expect(second.containerId).not.toBe(first.containerId);
    expect(second.createdAt).toBe(first.createdAt);
    expect(await readFromVolume(volume, 'notes.txt', tb.baseImage)).toBe('unsaved-work');
    const events = await (await agent.request(`/v1/workspaces/${ids.kept}/events`)).text();
    expect(events).toContain(`volume ${volume} exists: keeping its contents`);
    // Ready again: the same POST is answered with it (200), another body is refused (409).
    expect((await agent.request('/v1/workspaces', json(body))).status).toBe(200);
    expect((await agent.request('/v1/workspaces', json({ ...body, configName: 'other' }))).status).toBe(409);
  });

  it('per-job controls: noCache, noPush and a pushTimeoutSeconds no longer than the node allows; the result says what was applied', async () => {
    const cache = { registry: cacheRegistry, username: tb.registryUser, password: tb.registryPassword };
    // Longer than the node's limit (WARMSTART_PUSH_TIMEOUT_SECONDS, 600 by default), or not positive: refused, nothing made.
    for (const [pushTimeoutSeconds, code] of [
      [601, 'INVALID_ARGUMENT'],
      [0, 'INVALID_REQUEST'],
      [-5, 'INVALID_REQUEST'],
    ] as const) {
      const r = await agent.request('/v1/workspaces', json({ id: ids.noPush, repository: repo, cache, pushTimeoutSeconds }));
      expect(r.status, String(pushTimeoutSeconds)).toBe(400);
      const err = (await r.json()) as { code: string; message: string };
      expect(err.code).toBe(code);
      if (code === 'INVALID_ARGUMENT') expect(err.message).toContain('600 s');
    }
    expect((await agent.request(`/v1/workspaces/${ids.noPush}`)).status).toBe(404);
    expect(await volumeExists(`warmstart-ws-${ids.noPush}`)).toBe(false);

    // noCache: the registry is named, and still nothing is pulled, looked up or pushed.
    expect((await agent.request('/v1/workspaces', json({ id: ids.noCache, repository: repo, cache, noCache: true }))).status).toBe(202);
    const off = (await waitForStatus(agent, ids.noCache, ['ready', 'recovery', 'failed'])) as View;
    expect(off.status, JSON.stringify(off.error)).toBe('ready');
    expect(off.cache).toMatchObject({ hit: 'disabled', reason: 'cache disabled for this job' });
    expect(off.controls).toEqual({ noCache: true, noPush: false, pushTimeoutSeconds: 600 });
    expect((await waitForPush(agent, ids.noCache)).push.status).toBe('skipped');
    const offPhases = (await (await agent.request(`/v1/workspaces/${ids.noCache}/events`)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Ev)
      .filter((e) => e.type === 'phase-start')
      .map((e) => e.phase);
    expect(offPhases).toContain('up');
    for (const p of ['pull', 'moving-labels', 'exact-lookup', 'push']) expect(offPhases).not.toContain(p);

    // noPush with a shorter timeout: a build from the layer cache (another exact key), no push, no new tag.
    await missExactTag(repo);
    const tagsBefore = await registryTags(cacheRef);
    expect(
      (await agent.request('/v1/workspaces', json({ id: ids.noPush, repository: repo, cache, noPush: true, pushTimeoutSeconds: 30 }))).status,
    ).toBe(202);
    await waitForStatus(agent, ids.noPush, ['ready', 'recovery', 'failed']);
    const noPush = await waitForPush(agent, ids.noPush);
    expect(noPush.status, JSON.stringify(noPush.error)).toBe('ready');
    expect(noPush.cache.hit).toBe('layers');
    expect(noPush.push).toMatchObject({ status: 'skipped', reason: 'push disabled for this job' });
    expect(noPush.controls).toEqual({ noCache: false, noPush: true, pushTimeoutSeconds: 30 });
    expect(await registryTags(cacheRef)).toEqual(tagsBefore);
  });

  it('the registry password and the API token appear in no output and no file of the agent', async () => {
    const secrets = { 'registry password': tb.registryPassword, 'API token': agent.token };
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const output = agent.output();
    expect(output).toContain('job queued'); // the output really was captured
    const files = [...(await filesUnder(env.WARMSTART_STATE_DIR!)), ...(await filesUnder(env.WARMSTART_RUNTIME_DIR!))];
    expect(files.some((f) => f.endsWith('workspace.json'))).toBe(true);
    const places: Array<[string, Buffer]> = [['output', Buffer.from(output)]];
    for (const f of files) places.push([f, await readFile(f)]);
    // The scan reads what is there: the second workspace's id is in its files and in the log.
    expect(places.filter(([, bytes]) => bytes.includes(ids.second)).length).toBeGreaterThan(2);
    for (const [name, secret] of Object.entries(secrets)) {
      for (const needle of [secret, b64(secret), b64(`${tb.registryUser}:${secret}`)]) {
        for (const [place, bytes] of places) expect(bytes.includes(needle), `${name} in ${place}`).toBe(false);
      }
    }
  });
});
