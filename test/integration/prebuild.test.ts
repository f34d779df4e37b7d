import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrebuildResult } from '../../shared/src/prebuild-result.js';
import { expectedCacheRef, registryPath } from '../support/cache-ref.js';
import { CLI, parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, wipeImages } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('prebuild');
const namespace = `warmstart-test/${run}`;
const cacheRegistry = `${tb.registry}/${namespace}`;
const upId = `${run}-up`;
const basic = `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}`;
const MANIFEST_TYPES =
  'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

/** The registry's digest of a ref, or null when the tag is not there. */
async function manifestDigest(ref: string): Promise<string | null> {
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const r = await fetch(`http://${tb.registry}/v2/${registryPath(ref)}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { authorization: basic, accept: MANIFEST_TYPES },
  });
  return r.ok ? r.headers.get('docker-content-digest') : null;
}

/** What a prebuild's internal workspace could have left on the engine: containers and volumes of `prebuild-*` ids. */
async function prebuildLeftovers(): Promise<string[]> {
  const c = await execa('docker', ['ps', '-a', '--filter', 'label=warmstart.workspace', '--format', '{{.Label "warmstart.workspace"}}']);
  const v = await execa('docker', ['volume', 'ls', '-q', '--filter', 'name=warmstart-ws-prebuild-']);
  return [
    ...String(c.stdout)
      .split('\n')
      .filter((l) => l.startsWith('prebuild-'))
      .map((l) => `container of ${l}`),
    ...String(v.stdout)
      .split('\n')
      .filter(Boolean)
      .map((l) => `volume ${l}`),
  ];
}

/** Images carrying this run's label: every layer the fixture builds has it. */
async function runImages(): Promise<string[]> {
  const r = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${run}`]);
  return String(r.stdout).split('\n').filter(Boolean);
}

function parsePrebuild(stdout: string): PrebuildResult {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as PrebuildResult;
}

describe('prebuilds (real engine, registry, devcontainers CLI)', () => {
  let repo: string;
  let env: Record<string, string>;
  const pushed: string[] = [];
  const prebuild = () =>
    runCli(['prebuild', repo, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  beforeAll(async () => {
    repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `pb-${run}` });
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: cacheRegistry });
  });

  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: [upId] });
    for (const ref of pushed) {
      const digest = await manifestDigest(ref).catch(() => null);
      if (digest)
        await fetch(`http://${tb.registry}/v2/${registryPath(ref)}/manifests/${digest}`, {
          method: 'DELETE',
          headers: { authorization: basic },
        }).catch(() => undefined);
    }
    for (const d of [env?.WARMSTART_STATE_DIR, env?.WARMSTART_RUNTIME_DIR]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('does not build what it could not push: no credentials or a config that builds nothing is skipped, a read-only registry fails', async () => {
    const nothingLeft = async (): Promise<void> => {
      expect(await prebuildLeftovers()).toEqual([]);
      expect(await readdir(env.WARMSTART_STATE_DIR!)).toEqual([]);
    };
    const noCreds = await runCli(['prebuild', repo, '--json'], { env });
    expect(noCreds.code, noCreds.stderr).toBe(0);
    expect(parsePrebuild(noCreds.stdout)).toMatchObject({ status: 'skipped', reason: 'no registry credentials to push with', pushed: [] });
    expect(noCreds.stderr).not.toContain('clone');
    await nothingLeft();

    const readOnly = await runCli(
      [
        'prebuild',
        repo,
        '--cache-registry',
        `${tb.readonlyRegistry}/${namespace}`,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      { env, input: `${tb.registryPassword}\n` },
    );
    expect(readOnly.code, readOnly.stderr).toBe(1);
    const ro = parsePrebuild(readOnly.stdout);
    expect(ro).toMatchObject({ status: 'failed', pushed: [], error: { code: 'REGISTRY_PUSH_DENIED' } });
    expect(readOnly.stderr).not.toContain('clone');
    await nothingLeft();

    const imageRepo = await makeRepo(
      { '.devcontainer/devcontainer.json': `{ "image": "${tb.baseImage}" }` },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `pb-image-${run}` },
    );
    const image = await runCli(['prebuild', imageRepo, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });
    expect(image.code, image.stderr).toBe(0);
    expect(parsePrebuild(image.stdout)).toMatchObject({
      status: 'skipped',
      reason: 'image-based config: no built image to push',
      pushed: [],
      timings: { buildMs: null },
    });
    expect(image.stderr).not.toMatch(/^\[.*\] up \.\.\./m);
    await nothingLeft();
  });

  it('a build that fails is a failed prebuild: exit 1, its error code, nothing pushed or left behind', async () => {
    const broken = await makeRepo(
      {
        '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" } }',
        '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo prebuild-breaks-here && exit 3\n`,
      },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `pb-broken-${run}` },
    );
    const r = await runCli(['prebuild', broken, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });
    expect(r.code, r.stderr).toBe(1);
    const res = parsePrebuild(r.stdout);
    expect(res).toMatchObject({ status: 'failed', pushed: [], error: { code: 'DEVCONTAINER_UP_FAILED' } });
    expect(res.timings.buildMs).toBeGreaterThan(0);
    expect(await manifestDigest(expectedCacheRef(cacheRegistry, broken))).toBeNull();
    expect(await prebuildLeftovers()).toEqual([]);
    expect(await readdir(env.WARMSTART_STATE_DIR!)).toEqual([]);
    expect(await readdir(join(env.WARMSTART_RUNTIME_DIR!, 'jobs')).catch(() => [])).toEqual([]);
  });

  it('pushes the moving and exact tags, keeps nothing; `up` is then an exact hit; a second prebuild is skipped', async () => {
    expect(await prebuildLeftovers()).toEqual([]);
    const first = await prebuild();
    expect(first.code, first.stderr).toBe(0);
    const r = parsePrebuild(first.stdout);
    const moving = expectedCacheRef(cacheRegistry, repo);
    expect(r.status, JSON.stringify(r)).toBe('done');
    expect(r.refs.moving).toBe(moving);
    expect(r.refs.exact).toMatch(/:exact-[0-9a-f]{40}$/);
    expect(r.pushed).toEqual([moving, r.refs.exact]);
    pushed.push(...r.pushed);
    expect(r.push?.status).toBe('pushed');
    expect(r.error).toBeNull();
    expect(r.timings.buildMs).toBeGreaterThan(0);
    expect(r.timings.pushMs).toBeGreaterThan(0);
    expect(r.timings.totalMs).toBeGreaterThanOrEqual(r.timings.buildMs! + r.timings.pushMs!);
    expect(first.stdout + first.stderr).not.toContain(tb.registryPassword);

    // Both tags are in the registry.
    const movingDigest = await manifestDigest(moving);
    const exactDigest = await manifestDigest(r.refs.exact!);
    expect(movingDigest).toMatch(/^sha256:/);
    expect(exactDigest).toMatch(/^sha256:/);

    // Nothing of the internal workspace is left: no container, no volume, no record or clone, no job dir.
    expect(await prebuildLeftovers()).toEqual([]);
    expect(await readdir(env.WARMSTART_STATE_DIR!)).toEqual([]);
    expect(await readdir(join(env.WARMSTART_RUNTIME_DIR!, 'jobs')).catch(() => [])).toEqual([]);

    // A fresh node: not one image of this run is left.
    await wipeImages(run, [moving, r.refs.exact!]);
    expect(await runImages()).toEqual([]);

    const up = await runCli(['up', repo, '--workspace-id', upId, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });
    const ws = parseResult(up);
    expect(up.code, up.stderr).toBe(0);
    expect(ws.cache.hit).toBe('exact');
    expect(ws.cache.ref).toBe(r.refs.exact);
    const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', upId, 'events.ndjson'), 'utf8');
    expect(events).not.toMatch(/Run: \S*docker build /);
    expect(events).not.toMatch(/Step \d+\/\d+ :/);
    await cleanUp({ runId: run, workspaceIds: [upId] });

    // The content is unchanged: the second prebuild finds the exact tag and does nothing.
    const again = await prebuild();
    expect(again.code, again.stderr).toBe(0);
    const s = parsePrebuild(again.stdout);
    expect(s).toMatchObject({ status: 'skipped', reason: 'exact tag exists', pushed: [], push: null, error: null });
    expect(s.refs).toEqual({ moving, exact: r.refs.exact });
    expect(s.timings.buildMs).toBeNull();
    expect(again.stderr).not.toMatch(/^\[.*\] up \.\.\./m); // no build phase ran
    expect(await manifestDigest(moving)).toBe(movingDigest);
    expect(await manifestDigest(r.refs.exact!)).toBe(exactDigest);
    expect(await prebuildLeftovers()).toEqual([]);
    expect((await readdir(env.WARMSTART_STATE_DIR!)).filter((d) => d !== 'workspaces')).toEqual([]);
    console.log(
      `[prebuild] build ${r.timings.buildMs} ms, push ${r.timings.pushMs} ms, total ${r.timings.totalMs} ms; skipped in ${s.timings.totalMs} ms`,
    );
  });

  describe('POST /v1/prebuilds', () => {
    const AUDIENCE = `warmstart-agent-${run}`;
    const ISSUER = `https://control-plane.test/${run}`;
    let agent: Agent;
    let jwks: Server;
    let key: CryptoKey;
    let apiRepo: string;
    let serveEnv: Record<string, string>;
    /** the internal id of a prebuild killed (SIGKILL) with its container up */
    let interrupted = '';

    beforeAll(async () => {
      apiRepo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `pb-api-${run}` });
      const pair = await generateKeyPair('RS256');
      key = pair.privateKey;
      const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
      jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
      await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
      serveEnv = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: cacheRegistry });
      // A prebuild killed with its container up (held there by a failpoint) leaves its container, volume, clone and record.
      const killed = execa(process.execPath, [CLI, 'prebuild', apiRepo, '--registry-username', tb.registryUser, '--registry-password-stdin'], {
        env: { ...serveEnv, WARMSTART_FAILPOINTS: 'pause:host-access-started=120000' },
        extendEnv: true,
        reject: false,
        input: `${tb.registryPassword}\n`,
      });
      const deadline = Date.now() + 120_000;
      while (!interrupted && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        const c = await execa('docker', ['ps', '-a', '--filter', 'label=warmstart.workspace', '--format', '{{.Label "warmstart.workspace"}}']);
        interrupted =
          String(c.stdout)
            .split('\n')
            .find((l) => l.startsWith('prebuild-')) ?? '';
      }
      killed.kill('SIGKILL');
      await killed;
      expect(interrupted).toMatch(/^prebuild-[0-9a-f]{12}$/);
      expect((await prebuildLeftovers()).sort()).toEqual([`container of ${interrupted}`, `volume warmstart-ws-${interrupted}`]);
      expect(await readdir(join(serveEnv.WARMSTART_STATE_DIR!, 'prebuilds', 'workspaces'))).toEqual([interrupted]);
      agent = await startAgent(serveEnv, {
        env: {
          WARMSTART_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`,
          WARMSTART_JWT_AUDIENCE: AUDIENCE,
          WARMSTART_JWT_ISSUER: ISSUER,
        },
      });
    });

    afterAll(async () => {
      await agent?.term();
      if (interrupted) {
        const left = await execa('docker', ['ps', '-aq', '--filter', `label=warmstart.workspace=${interrupted}`], { reject: false });
        for (const id of String(left.stdout).split('\n').filter(Boolean)) await execa('docker', ['rm', '-f', id], { reject: false });
        await execa('docker', ['volume', 'rm', '-f', `warmstart-ws-${interrupted}`], { reject: false });
      }
      await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
      for (const d of [serveEnv?.WARMSTART_STATE_DIR, serveEnv?.WARMSTART_RUNTIME_DIR]) if (d) await rm(d, { recursive: true, force: true });
    });

    const post = (body: unknown, auth?: string) =>
      agent.request('/v1/prebuilds', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        ...(auth ? { auth } : {}),
      });

    it('at start-up, removes what a killed prebuild left: its container, volume, clone and record', async () => {
      expect(await prebuildLeftovers()).toEqual([]);
      expect(await readdir(serveEnv.WARMSTART_STATE_DIR!)).not.toContain('prebuilds');
      expect(agent.output()).toContain(interrupted);
    });

    it('answers 202 at once, runs in the background to done with both tags pushed, and keeps nothing', async () => {
      const body = { repository: apiRepo, cache: { registry: cacheRegistry, username: tb.registryUser, password: tb.registryPassword } };
      const t0 = Date.now();
      const res = await post(body);
      expect(res.status).toBe(202);
      expect(Date.now() - t0).toBeLessThan(5_000);
      const view = (await res.json()) as { id: string; status: string; result: unknown };
      expect(['queued', 'running']).toContain(view.status);
      expect(view.result).toBeNull();

      let last: { status: string; result: PrebuildResult | null } = { status: view.status, result: null };
      const deadline = Date.now() + 240_000;
      while (!['done', 'failed', 'skipped'].includes(last.status) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        last = (await (await agent.request(`/v1/prebuilds/${view.id}`)).json()) as typeof last;
      }
      expect(last.status, JSON.stringify(last)).toBe('done');
      const r = last.result!;
      pushed.push(...r.pushed);
      expect(r.refs.moving).toBe(expectedCacheRef(cacheRegistry, apiRepo));
      expect(r.pushed).toEqual([r.refs.moving, r.refs.exact]);
      for (const ref of r.pushed) expect(await manifestDigest(ref)).toMatch(/^sha256:/);
      expect(await prebuildLeftovers()).toEqual([]);
      const list = (await (await agent.request('/v1/workspaces')).json()) as { workspaces: unknown[] };
      expect(list.workspaces).toEqual([]);
      expect(agent.output()).not.toContain(tb.registryPassword);
    });

    it('a workspace-scoped JWT gets 403 FORBIDDEN and starts nothing', async () => {
      const jwt = await new SignJWT({ workspace: 'some-workspace' })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setSubject('control-plane')
        .setAudience(AUDIENCE)
        .setIssuer(ISSUER)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key);
      const res = await post({ repository: apiRepo }, `Bearer ${jwt}`);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe('FORBIDDEN');
    });
  });
});
