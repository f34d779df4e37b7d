/**
 * Attack 5: a JWT scoped to one workspace creating golden images. It may
 * capture its own workspace only, under names `<workspace>` or
 * `<workspace>-...`; a body `owner` is ignored, the image's owner label is
 * the one recorded on the workspace (the `sub` of the JWT that created it).
 * A real `warmstart serve` trusting a JWKS endpoint on loopback, the real
 * engine; refusals leave the engine's image list as it was.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { waitForJob } from '../support/jobs.js';
import { startAgent, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('gsc');
const A = `${run}-a`;
const B = `${run}-b`;
const AUDIENCE = `warmstart-agent-${run}`;
const ISSUER = `https://control-plane.test/${run}`;
const KID = 'golden-scope-key';

let jwks: Server;
let agent: Agent;
let key: CryptoKey;
let repo: string;
const madeRefs: string[] = [];

const sign = (claims: Record<string, unknown>, sub: string): Promise<string> =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
    .setSubject(sub)
    .setAudience(AUDIENCE)
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(key);

async function call(path: string, token: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await agent.request(path, {
    method: 'POST',
    auth: null,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** Polls the workspace with `token` (the agent takes JWTs only) until it is ready. */
async function waitReady(id: string, token: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await agent.request(`/v1/workspaces/${id}`, { auth: `Bearer ${token}` });
    last = await r.text();
    const status = r.ok ? (JSON.parse(last) as { status: string }).status : '';
    if (status === 'ready') return;
    if (status === 'failed' || status === 'recovery') throw new Error(`workspace ${id} ended ${status}: ${last}`);
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`workspace ${id} not ready in time: ${last}`);
}

/** Every golden image tag and the labels of every image: what a refusal must leave unchanged. */
async function engineImages(): Promise<string> {
  const r = await execa('docker', ['images', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']);
  return String(r.stdout).split('\n').sort().join('\n');
}

beforeAll(async () => {
  const pair = await generateKeyPair('RS256');
  key = pair.privateKey;
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  jwks = createServer((req, res) => {
    if (req.url === '/jwks.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  repo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo golden > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'golden-scope' },
  );
  agent = await startAgent(await testEnv(tb.baseImage), {
    env: {
      WARMSTART_API_TOKEN_FILE: '', // JWTs only
      WARMSTART_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`,
      WARMSTART_JWT_AUDIENCE: AUDIENCE,
      WARMSTART_JWT_ISSUER: ISSUER,
      // The agent's cache registry and its credentials: what a stolen name would be pushed with.
      WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}`,
    },
  });
});

afterAll(async () => {
  await agent?.term();
  await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
  await cleanUp({ runId: run, workspaceIds: [A, B], refs: madeRefs });
});

describe('attack 5: a workspace-scoped JWT and golden images', () => {
  it("refuses names outside its workspace and other workspaces (403, nothing created); the owner is the recorded one, never the body's", async () => {
    const alice = await sign({ workspace: A }, 'alice');
    const ops = await sign({}, 'ops'); // a node-wide JWT (no workspace claim)

    // A JWT with a workspace claim may only create that workspace.
    const stray = await call('/v1/workspaces', alice, { id: B, repository: repo, lightweight: true });
    expect(stray.status).toBe(403);
    expect(stray.json.code).toBe('FORBIDDEN');

    expect((await call('/v1/workspaces', alice, { id: A, repository: repo, lightweight: true })).status).toBe(202);
    expect((await call('/v1/workspaces', ops, { id: B, repository: repo, lightweight: true })).status).toBe(202);
    await waitReady(A, alice);
    await waitReady(B, ops);
    const record = JSON.parse(await readFile(join(agent.env.WARMSTART_STATE_DIR!, 'workspaces', A, 'workspace.json'), 'utf8')) as { owner: unknown };
    expect(record.owner).toBe('alice');

    const before = await engineImages();
    const refusals = [
      { body: { workspaceId: A, name: 'other', push: true }, status: 403, code: 'IMAGE_NAME_FORBIDDEN' },
      { body: { workspaceId: A, name: 'other', owner: 'mallory', push: true }, status: 403, code: 'IMAGE_NAME_FORBIDDEN' },
      { body: { workspaceId: A, name: `${A}x` }, status: 403, code: 'IMAGE_NAME_FORBIDDEN' },
      { body: { workspaceId: A, name: B }, status: 403, code: 'IMAGE_NAME_FORBIDDEN' },
      { body: { workspaceId: B, name: B, push: true }, status: 403, code: 'FORBIDDEN' },
      { body: { workspaceId: B, name: `${A}-from-b` }, status: 403, code: 'FORBIDDEN' },
    ];
    for (const r of refusals) {
      const res = await call('/v1/images', alice, r.body);
      expect({ status: res.status, code: res.json.code }, JSON.stringify(r.body)).toEqual({ status: r.status, code: r.code });
      expect(Object.keys(res.json).sort()).toEqual(['code', 'message']);
    }
    expect(await engineImages()).toBe(before);

    // Under A's prefix: accepted as a job (202), made, and owned by alice whatever the body says.
    const name = `${A}-base`;
    madeRefs.push(`warmstart-golden/${name}:latest`);
    const made = await call('/v1/images', alice, { workspaceId: A, name, owner: 'mallory' });
    expect(made.status, JSON.stringify(made.json)).toBe(202);
    const job = made.json.id as string;
    const done = await waitForJob(agent, job, 120_000, `Bearer ${alice}`);
    expect(done.status, JSON.stringify(done)).toBe('done');
    expect((done.result as { image: { owner: unknown } }).image.owner).toBe('alice');
    // The job is alice's workspace's: another workspace's token does not see it (404), a node-wide one does.
    const bob = await sign({ workspace: B }, 'bob');
    const seen = async (token: string): Promise<number> => (await agent.request(`/v1/jobs/${job}`, { auth: `Bearer ${token}` })).status;
    expect({ alice: await seen(alice), bob: await seen(bob), ops: await seen(ops) }).toEqual({ alice: 200, bob: 404, ops: 200 });
    expect((await agent.request(`/v1/jobs/${job}/events`, { auth: `Bearer ${bob}` })).status).toBe(404);
    const label = await execa('docker', [
      'image',
      'inspect',
      '--format',
      '{{index .Config.Labels "dev.warmstart.owner"}}',
      `warmstart-golden/${name}:latest`,
    ]);
    expect(String(label.stdout).trim()).toBe('alice');

    // With the repository in it: the same scope, the same owner; the folder's files are the workspace's.
    const withRepo = `${A}-repo`;
    madeRefs.push(`warmstart-golden/${withRepo}:latest`);
    const repoImage = await call('/v1/images', alice, { workspaceId: A, name: withRepo, withWorkspace: true, owner: 'mallory' });
    expect(repoImage.status, JSON.stringify(repoImage.json)).toBe(202);
    const repoDone = await waitForJob(agent, repoImage.json.id as string, 120_000, `Bearer ${alice}`);
    expect(repoDone.status, JSON.stringify(repoDone)).toBe('done');
    const view = (repoDone.result as { image: { owner: unknown; labels: Record<string, string> } }).image;
    expect(view.owner).toBe('alice');
    expect(view.labels['dev.warmstart.workspace-folder']).toMatch(/^\/workspaces\/./);
    expect((await call('/v1/images', alice, { workspaceId: B, name: `${A}-b-repo`, withWorkspace: true })).status).toBe(403);

    // A node-wide caller's `owner` is still a check against the recorded owner.
    const mismatch = await call('/v1/images', ops, { workspaceId: A, name: 'node-wide-name', owner: 'mallory' });
    expect(mismatch.json.code).toBe('OWNER_MISMATCH');
    const images = await engineImages();
    expect(images).not.toContain('warmstart-golden/node-wide-name');
    console.log(
      `golden scope: ${refusals.length} refusals (403), image list unchanged; ${name} owner label '${String(label.stdout).trim()}' (body said mallory)`,
    );
  });
});
