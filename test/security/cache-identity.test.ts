import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../agent/src/config/agent-config.js';
import { planJob } from '../../agent/src/workspace/plan.js';
import { expectedCacheRef, registryPath } from '../support/cache-ref.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, imageExists, wipeImages } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

/**
 * Attack: one repository's job writes another repository's cache, and the
 * other's next start runs what it wrote. Three defences, each shown against
 * the real engine, registry, CLI and `warmstart serve`:
 *  (a) a cache path per repository identity: the same owner/name on another
 *      git host, or in another directory, is another path;
 *  (b) a workspace-scoped caller cannot name a cache ref outside its own
 *      repository's path (CACHE_REF_FORBIDDEN, nothing created);
 *  (c) an image under a repository's exact tag that is not labelled with
 *      that repository and content key is not started: a miss with
 *      CACHE_IDENTITY_MISMATCH, and the workspace builds as on any miss.
 */
const tb = loadTestbed();
const run = runId('cid');
const namespace = `warmstart-test/${run}`;
const registry = `${tb.registry}/${namespace}`;
const ids = {
  victim: `${run}-victim`,
  twin: `${run}-twin`,
  viaMoving: `${run}-via-moving`,
  forged: `${run}-forged`,
  healed: `${run}-healed`,
  attacker: `${run}-attacker`,
};
const AUDIENCE = `warmstart-agent-${run}`;
const ISSUER = `https://control-plane.test/${run}`;
const KID = 'cache-identity-key';
const basicAuth = `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}`;

// A tiny build; the same files in two directories make the same content key.
const files = {
  '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
  '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo genuine > /made-by\n',
  'README.md': 'cache identity fixture\n',
};

/** Tags of a repository path in the registry (empty when the repository does not exist). */
async function tags(path: string): Promise<string[]> {
  const r = await fetch(`http://${tb.registry}/v2/${path}/tags/list`, { headers: { authorization: basicAuth } });
  if (r.status === 404) return [];
  expect(r.status).toBe(200);
  return ((await r.json()) as { tags: string[] | null }).tags ?? [];
}

/** The labels of the image config a ref names in the registry, read over the registry API. */
async function registryLabels(ref: string): Promise<Record<string, string>> {
  const path = registryPath(ref);
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const m = await fetch(`http://${tb.registry}/v2/${path}/manifests/${tag}`, {
    headers: { authorization: basicAuth, accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  expect(m.status).toBe(200);
  const manifest = (await m.json()) as { config: { digest: string } };
  const c = await fetch(`http://${tb.registry}/v2/${path}/blobs/${manifest.config.digest}`, { headers: { authorization: basicAuth } });
  expect(c.status).toBe(200);
  return ((await c.json()) as { config: { Labels: Record<string, string> | null } }).config.Labels ?? {};
}

async function inContainer(containerId: string, cmd: string): Promise<string> {
  const r = await execa('docker', ['exec', containerId, 'sh', '-c', cmd], { reject: false });
  return String(r.stdout).trim();
}

describe('cache identity: one cache path per repository, exact images carry who they were made for', () => {
  let victim: string;
  let twin: string;
  let env: Record<string, string>;
  let scratch: string;
  let dockerConfig: string;
  let movingRef: string;
  let exactRef: string;
  const up = (repo: string, id: string) =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  beforeAll(async () => {
    // Two checkouts with the same owner/name and the same files, in two directories.
    victim = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'app' });
    twin = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'app' });
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry });
    scratch = await mkdtemp(join(tmpdir(), 'warmstart-cid-'));
    // The test's own docker auth for pushing the forged image; never ~/.docker.
    dockerConfig = join(scratch, 'docker-config');
    await mkdir(dockerConfig, { mode: 0o700 });
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [tb.registry]: { auth: basicAuth.slice('Basic '.length) } } }), {
      mode: 0o600,
    });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs: [movingRef, exactRef].filter(Boolean) });
    await rm(scratch, { recursive: true, force: true });
  });

  it('(a) the same owner/name on other hosts and in other directories gets its own cache path', async () => {
    const config = configFromEnv({ WARMSTART_CACHE_REGISTRY: registry });
    const planned = [
      'https://github.com/acme/app',
      'https://gitlab.example/acme/app',
      'https://gitlab.example:8443/acme/app',
      'https://[fd00::7]/acme/app',
      victim,
      twin,
    ].map((repository) => planJob({ workspaceId: 'plan-only', repository }, config).cacheRef!);
    expect(planned).toEqual([
      `${registry}/acme/app:devcontainer-cache`,
      `${registry}/gitlab.example/acme/app:devcontainer-cache`,
      `${registry}/gitlab.example_8443/acme/app:devcontainer-cache`,
      `${registry}/fd00_0000_0000_0000_0000_0000_0000_0007/acme/app:devcontainer-cache`,
      expectedCacheRef(registry, victim),
      expectedCacheRef(registry, twin),
    ]);
    expect(new Set(planned).size).toBe(planned.length);
    // The CLI shows the same path.
    const shown = await runCli(['cache', 'ref', 'https://gitlab.example:8443/acme/app', '--cache-registry', registry], { env });
    expect(shown.stdout.trim()).toBe(planned[2]);

    // Real runs: the victim builds and pushes; the twin (same files, so the
    // same content key) does not get the victim's exact image: it has its own path.
    const first = parseResult(await up(victim, ids.victim));
    expect(first.outcome).toBe('ready');
    expect(first.cache.hit).toBe('miss');
    expect(first.push.status).toBe('pushed');
    movingRef = first.cache.ref!;
    expect(movingRef).toBe(expectedCacheRef(registry, victim));
    const victimTags = await tags(registryPath(movingRef));
    const exactTag = victimTags.find((t) => t.startsWith('exact-'));
    expect(victimTags).toContain('devcontainer-cache');
    expect(exactTag).toMatch(/^exact-[0-9a-f]{40}$/);
    exactRef = `${movingRef.slice(0, movingRef.lastIndexOf(':'))}:${exactTag}`;

    // The exact tag names an image labelled with the victim's identity and key; so does the moving tag (the same manifest).
    const labels = await registryLabels(exactRef);
    expect(labels['dev.warmstart.repository']).toBe(`local:${victim}`);
    expect(labels['dev.warmstart.content-key']).toMatch(new RegExp(`^${exactTag!.slice('exact-'.length)}[0-9a-f]{24}$`));
    expect(await registryLabels(movingRef)).toEqual(labels);

    await cleanUp({ runId: run, workspaceIds: [ids.victim] });
    await wipeImages(run, [movingRef, exactRef]);
    const second = parseResult(await up(twin, ids.twin));
    expect(second.outcome).toBe('ready');
    expect(second.cache.ref).toBe(expectedCacheRef(registry, twin));
    expect(second.cache.ref).not.toBe(movingRef);
    expect(second.cache.hit).toBe('miss');
    expect(second.push.status).toBe('pushed');
    await cleanUp({ runId: run, workspaceIds: [ids.twin], refs: [second.cache.ref!] });
  });

  describe('(b) a workspace-scoped caller names a ref in another repository', () => {
    let jwks: Server;
    let agent: Agent;
    let signingKey: CryptoKey;

    beforeAll(async () => {
      const pair = await generateKeyPair('RS256');
      signingKey = pair.privateKey;
      const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
      jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] })));
      await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
      agent = await startAgent(await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry }), {
        env: {
          WARMSTART_API_TOKEN_FILE: '',
          WARMSTART_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`,
          WARMSTART_JWT_AUDIENCE: AUDIENCE,
          WARMSTART_JWT_ISSUER: ISSUER,
        },
      });
    });
    afterAll(async () => {
      await agent?.term();
      await new Promise((r) => jwks?.close(r));
    });

    it('is refused with CACHE_REF_FORBIDDEN (403) and nothing is created', async () => {
      expect(exactRef, 'runs after (a), which pushed the victim').toBeTruthy();
      const token = await new SignJWT({ workspace: ids.attacker })
        .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
        .setSubject('tenant-b')
        .setAudience(AUDIENCE)
        .setIssuer(ISSUER)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
        .sign(signingKey);
      const before = await tags(registryPath(movingRef));
      for (const ref of [exactRef, movingRef]) {
        const r = await agent.request('/v1/workspaces', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          auth: `Bearer ${token}`,
          body: JSON.stringify({
            id: ids.attacker,
            repository: twin,
            cache: { registry, ref, username: tb.registryUser, password: tb.registryPassword },
          }),
        });
        const body = (await r.json()) as { code: string; message: string };
        expect(r.status, JSON.stringify(body)).toBe(403);
        expect(body.code).toBe('CACHE_REF_FORBIDDEN');
        expect(body.message).toContain(expectedCacheRef(registry, twin).replace(/:devcontainer-cache$/, ''));
      }
      // Nothing was created: no record, volume or container, and the victim's tags are as they were.
      expect((await agent.request(`/v1/workspaces/${ids.attacker}`, { auth: `Bearer ${token}` })).status).toBe(404);
      expect((await execa('docker', ['volume', 'inspect', `warmstart-ws-${ids.attacker}`], { reject: false })).exitCode).not.toBe(0);
      expect(String((await execa('docker', ['ps', '-aq', '--filter', `label=warmstart.workspace=${ids.attacker}`])).stdout).trim()).toBe('');
      expect(await tags(registryPath(movingRef))).toEqual(before);
      expect(await registryLabels(exactRef)).toMatchObject({ 'dev.warmstart.repository': `local:${victim}` });
    });
  });

  it('(c) a forged image under the exact tag is not started, nor under the moving tag; a correctly labelled one still is', async () => {
    expect(exactRef, 'runs after (a), which pushed the victim').toBeTruthy();
    const key = (await registryLabels(exactRef))['dev.warmstart.content-key']!;
    // Someone with push rights on the path puts another image under the victim's
    // exact tag, labelled for another repository (with the right key).
    const docker = (args: string[], input?: string) =>
      execa('docker', args, { env: { DOCKER_CONFIG: dockerConfig, DOCKER_BUILDKIT: '0' }, ...(input !== undefined ? { input } : {}) });
    await docker(
      ['build', '-q', '-t', exactRef, '--label', `dev.warmstart.repository=local:${twin}`, '--label', `dev.warmstart.content-key=${key}`, '-'],
      `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo forged > /made-by\n`,
    );
    await docker(['push', exactRef]);
    expect((await registryLabels(exactRef))['dev.warmstart.repository']).toBe(`local:${twin}`);

    // The victim starts on a wiped node: the moving tag is still the genuine image,
    // labelled for this repository and key (push-cache.ts), so it is the exact
    // image; the forged exact tag is never pulled.
    await wipeImages(run, [movingRef, exactRef]);
    const viaMoving = parseResult(await up(victim, ids.viaMoving));
    expect(viaMoving.cache.hit).toBe('exact');
    expect(await inContainer(viaMoving.containerId!, 'cat /made-by')).toBe('genuine');
    expect(await imageExists(exactRef)).toBe(false);
    await cleanUp({ runId: run, workspaceIds: [ids.viaMoving] });

    // Now the moving tag too: the forged image under both tags.
    await docker(
      ['build', '-q', '-t', movingRef, '--label', `dev.warmstart.repository=local:${twin}`, '--label', `dev.warmstart.content-key=${key}`, '-'],
      `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo forged > /made-by\n`,
    );
    await docker(['push', movingRef]);
    await wipeImages(run, [movingRef, exactRef]);
    const forgedRun = await up(victim, ids.forged);
    const forged = parseResult(forgedRun);
    expect(forgedRun.code, forgedRun.stderr).toBe(0);
    expect(forged.outcome).toBe('ready');
    expect(forged.profile).toBe('devcontainer');
    expect(forged.cache.hit).not.toBe('exact');
    expect(forged.cache.hit).toBe('layers');
    expect(forged.cache.ref).toBe(movingRef);
    expect(forged.cache.reason).toMatch(/^CACHE_IDENTITY_MISMATCH: /);
    expect(forged.cache.reason).toContain(`local:${twin}`);
    expect(await inContainer(forged.containerId!, 'cat /made-by')).toBe('genuine');
    expect(await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids.forged, 'events.ndjson'), 'utf8')).toContain('CACHE_IDENTITY_MISMATCH');
    // The job built, so it pushed the exact tag again, labelled for the victim.
    expect(forged.push.status).toBe('pushed');
    expect(await registryLabels(exactRef)).toMatchObject({ 'dev.warmstart.repository': `local:${victim}`, 'dev.warmstart.content-key': key });
    expect(await registryLabels(movingRef)).toMatchObject({ 'dev.warmstart.repository': `local:${victim}`, 'dev.warmstart.content-key': key });

    // With the correct labels back, a wiped node starts the exact image again.
    await cleanUp({ runId: run, workspaceIds: [ids.forged] });
    await wipeImages(run, [movingRef, exactRef]);
    const healed = parseResult(await up(victim, ids.healed));
    expect(healed.outcome).toBe('ready');
    expect(healed.cache.hit).toBe('exact');
    expect(healed.cache.ref).toBe(exactRef);
    expect(healed.cache.reason).toBeNull();
    expect(await inContainer(healed.containerId!, 'cat /made-by')).toBe('genuine');
  });
});
