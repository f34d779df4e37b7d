import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureTag } from '../../agent/src/cache/signature-store.js';
import { createOciApi } from '../../agent/src/registry/oci-api.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, wipeImages } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

/**
 * Attack: someone with push rights on the cache path (but not the fleet's
 * signing key) puts their own image under a repository's moving and exact
 * tags. With WARMSTART_CACHE_TRUSTED_KEYS set, a node uses as cache or exact
 * image only what a trusted key signed for that digest, repository and
 * content key: the forged tags are a miss with CACHE_SIGNATURE_INVALID and
 * the workspace builds as on any miss. Real CLI, engine and registry.
 */
const tb = loadTestbed();
const run = runId('sig');
const registry = `${tb.registry}/warmstart-test/${run}`;
const ids = { signer: `${run}-signer`, verified: `${run}-verified`, forged: `${run}-forged` };
const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
const api = createOciApi();
const files = {
  '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
  '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo genuine > /made-by\n',
  'README.md': 'cache signature fixture\n',
};

describe('signed cache images', () => {
  let repo: string;
  let scratch: string;
  let env: Record<string, string>;
  let privatePem: string;
  let movingRef = '';
  let exactRef = '';
  const up = (id: string, extra: Record<string, string> = {}) =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env: { ...env, ...extra },
      input: `${tb.registryPassword}\n`,
    });
  const digestOf = async (ref: string): Promise<string> => {
    const colon = ref.lastIndexOf(':');
    return (await api.getManifest(ref.slice(0, colon), ref.slice(colon + 1), creds))!.digest;
  };

  beforeAll(async () => {
    repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'signed' });
    scratch = await mkdtemp(join(tmpdir(), 'warmstart-sig-'));
    const pair = generateKeyPairSync('ed25519');
    privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFile(join(scratch, 'cache-signing.pem'), privatePem, { mode: 0o600 });
    await writeFile(join(scratch, 'cache-signing.pub'), pair.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    env = await testEnv(tb.baseImage, {
      WARMSTART_CACHE_REGISTRY: registry,
      WARMSTART_CACHE_SIGNING_KEY_FILE: join(scratch, 'cache-signing.pem'),
      WARMSTART_CACHE_TRUSTED_KEYS: join(scratch, 'cache-signing.pub'),
    });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs: [movingRef, exactRef].filter(Boolean) });
    if (movingRef) {
      const repository = movingRef.slice(0, movingRef.lastIndexOf(':'));
      for (const tag of await api.listTags(repository, creds).catch(() => [])) {
        const m = await api.getManifest(repository, tag, creds).catch(() => null);
        if (m) await api.deleteManifest(repository, m.digest, creds).catch(() => false);
      }
    }
    await rm(scratch, { recursive: true, force: true });
  });

  it('a signing node signs both tags; a wiped node that trusts the key starts the exact image; forged tags are refused', async () => {
    // 1. The signing node builds and pushes: both tags get their signature tag.
    const firstRun = await up(ids.signer);
    const first = parseResult(firstRun);
    expect(first.outcome, firstRun.stderr).toBe('ready');
    expect(first.push).toMatchObject({ status: 'pushed', reason: null });
    movingRef = first.cache.ref!;
    const repository = movingRef.slice(0, movingRef.lastIndexOf(':'));
    const tags = await api.listTags(repository, creds);
    const exactTag = tags.find((t) => t.startsWith('exact-'));
    expect(exactTag, tags.join()).toBeTruthy();
    exactRef = `${repository}:${exactTag}`;
    const movingDigest = await digestOf(movingRef);
    const exactDigest = await digestOf(exactRef);
    // One labelled manifest under both tags (agent/src/cache/relabel.ts), so one signature serves both.
    expect(movingDigest).toBe(exactDigest);
    expect(tags).toEqual(expect.arrayContaining([signatureTag(exactDigest)]));
    // The private key is nowhere in what the job wrote or printed.
    const keyLine = privatePem.split('\n')[1]!;
    expect(firstRun.stdout + firstRun.stderr).not.toContain(keyLine);
    const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids.signer, 'events.ndjson'), 'utf8');
    expect(events).not.toContain(keyLine);
    expect(events).not.toContain('PRIVATE KEY');
    // Nor in the container or the pushed image (its config, labels and history, as the registry holds it).
    const inspected = await execa('docker', ['inspect', first.containerId!, movingRef]);
    const manifest = JSON.parse((await api.getManifest(repository, exactTag!, creds))!.bytes.toString('utf8')) as { config: { digest: string } };
    const pushedConfig = (await api.getBlob(repository, manifest.config.digest, creds, 1 << 22))!.toString('utf8');
    expect(pushedConfig).toContain('dev.warmstart.content-key');
    for (const text of [String(inspected.stdout), pushedConfig]) {
      expect(text).not.toContain(keyLine);
      expect(text).not.toContain('WARMSTART_CACHE_SIGNING_KEY_FILE');
    }
    const environ = await execa('docker', ['exec', first.containerId!, 'sh', '-c', 'env; cat /proc/1/environ'], { reject: false });
    expect(String(environ.stdout)).not.toContain('WARMSTART_CACHE_SIGNING');
    const found = await execa('docker', [
      'exec',
      '-e',
      `K=${keyLine}`,
      first.containerId!,
      'sh',
      '-c',
      'for d in /*; do case $d in /proc|/sys|/dev) ;; *) grep -rlF -e "$K" "$d" 2>/dev/null;; esac; done; true',
    ]);
    expect(String(found.stdout).trim()).toBe('');

    // 2. A wiped node (no signing key, trusts the public key) starts the exact image.
    await cleanUp({ runId: run, workspaceIds: [ids.signer] });
    await wipeImages(run, [movingRef, exactRef]);
    const verifiedRun = await up(ids.verified, { WARMSTART_CACHE_SIGNING_KEY_FILE: '' });
    const verified = parseResult(verifiedRun);
    expect(verified.outcome, verifiedRun.stderr).toBe('ready');
    expect(verified.cache).toMatchObject({ hit: 'exact', ref: exactRef, reason: null });
    await cleanUp({ runId: run, workspaceIds: [ids.verified] });

    // 3. Someone without the key pushes their own images under both tags,
    //    keeping the genuine labels, so only the signature tells them apart.
    const dockerConfig = join(scratch, 'docker-config');
    await mkdir(dockerConfig, { mode: 0o700 });
    const auth = Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64');
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [tb.registry]: { auth } } }), { mode: 0o600 });
    const docker = (args: string[], input?: string) =>
      execa('docker', args, { env: { DOCKER_CONFIG: dockerConfig, DOCKER_BUILDKIT: '0' }, ...(input !== undefined ? { input } : {}) });
    for (const ref of [exactRef, movingRef]) {
      await docker(['pull', ref]);
      await docker(['build', '-q', '-t', ref, '-'], `FROM ${ref}\nLABEL warmstart.test-run=${run}\nRUN echo forged > /made-by\n`);
      await docker(['push', ref]);
    }
    expect(await digestOf(exactRef)).not.toBe(exactDigest);
    expect(await digestOf(movingRef)).not.toBe(movingDigest);

    // 4. A wiped node refuses both: a miss with CACHE_SIGNATURE_INVALID, and it still gets ready from a build.
    await wipeImages(run, [movingRef, exactRef]);
    const forgedRun = await up(ids.forged, { WARMSTART_CACHE_SIGNING_KEY_FILE: '' });
    const forged = parseResult(forgedRun);
    expect(forged.outcome, forgedRun.stderr).toBe('ready');
    expect(forged.cache.hit).toBe('miss');
    expect(forged.cache.reason).toMatch(/^CACHE_SIGNATURE_INVALID: .*no signature/);
    const made = await execa('docker', ['exec', forged.containerId!, 'cat', '/made-by']);
    expect(String(made.stdout).trim()).toBe('genuine');
    const forgedEvents = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids.forged, 'events.ndjson'), 'utf8');
    expect(forgedEvents).toContain(`${movingRef} not used: CACHE_SIGNATURE_INVALID`);
  });
});
