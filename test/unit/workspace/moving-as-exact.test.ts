import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSigningKey, parseTrustedKey } from '../../../agent/src/cache/signature.js';
import { signPushed } from '../../../agent/src/cache/signature-store.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { CacheSession } from '../../../agent/src/workspace/cache-phase.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { deleteAllTags, pushTinyImage, removeLabelled, removeLocal, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// The cache session's use of the moving image as the exact image, and BuildKit's
// layer source, against the real engine and the testbed's open registry.
const tb = loadTestbed();
const ns = uniqueNamespace('movex');
const engine = new DockerodeEngine();
const api = createOciApi();
const config = configFromEnv({ WARMSTART_STATE_DIR: '/nonexistent', WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/${ns}` });
const plan = planJob({ workspaceId: 'w1', repository: 'https://github.com/acme/app' }, config);
const ref = plan.cacheRef!;
const repository = ref.slice(0, ref.lastIndexOf(':'));
const identity = 'github.com/acme/app';
const key = 'c'.repeat(64);
const DAY = 86_400_000;

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signingKey = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
const trusted = [parseTrustedKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k.pub')];

function session(e: DockerEngine = engine, keys: typeof trusted | null = null): CacheSession {
  const rec = new PhaseRecorder('w1', { emit: () => undefined });
  return CacheSession.start({ engine: e, registry: createRegistryClient(), credentialSources: [], config: { cacheTrustedKeys: keys } }, plan, rec)!;
}

afterAll(async () => {
  await removeLocal([ref]);
  await removeLabelled(ns);
  await deleteAllTags(api, repository);
});

describe('the moving image as the exact image', () => {
  it('is used, by digest, when its labels name this repository and key; not for another key, repository or age', async () => {
    const labels = { 'warmstart.test': ns, 'dev.warmstart.repository': identity, 'dev.warmstart.content-key': key };
    const digest = await pushTinyImage(ref, tb.baseImage, labels);
    await removeLocal([ref]);
    const s = session();
    expect(await s.movingAsExact(identity, key, DAY)).toEqual({ image: `${repository}@${digest}`, digest, labels: expect.objectContaining(labels) });
    // the pull begun at t=0 brings the image named that way
    expect(await s.moving).toEqual({ available: true, reason: null });
    expect(await engine.imageId(`${repository}@${digest}`)).not.toBeNull();
    expect(await session().movingAsExact(identity, 'd'.repeat(64), DAY)).toBeNull();
    expect(await session().movingAsExact('github.com/evil/app', key, DAY)).toBeNull();
    expect(await session().movingAsExact(identity, key, 0)).toBeNull();
  }, 60_000);

  it('with trusted keys, only when a trusted key signed it for this key: labels anyone can write are not enough', async () => {
    // The right labels, and a trusted signature only as a moving tag (no content key):
    // labels anyone who can push may write, so the key must be in what was signed.
    const forged = await pushTinyImage(ref, tb.baseImage, {
      'warmstart.test': ns,
      'dev.warmstart.repository': identity,
      'dev.warmstart.content-key': key,
      n: 'forged',
    });
    await removeLocal([ref]);
    await signPushed({ engine, ref, key: signingKey, identity, contentKey: null, creds: null }).catch(() => undefined);
    expect(await session(engine, trusted).movingAsExact(identity, key, DAY)).toBeNull();
    // Signed for this key by a trusted key: used.
    await pushTinyImage(ref, tb.baseImage, {
      'warmstart.test': ns,
      'dev.warmstart.repository': identity,
      'dev.warmstart.content-key': key,
      n: 'genuine',
    });
    const digest = await signPushed({ engine, ref, key: signingKey, identity, contentKey: key, creds: null });
    expect(digest).not.toBe(forged);
    await removeLocal([ref]);
    expect(await session(engine, trusted).movingAsExact(identity, key, DAY)).toMatchObject({ image: `${repository}@${digest}`, digest });
  }, 60_000);

  it('is decided from the registry without waiting for the pull, and not used once that pull has failed', async () => {
    const digest = await pushTinyImage(ref, tb.baseImage, {
      'warmstart.test': ns,
      'dev.warmstart.repository': identity,
      'dev.warmstart.content-key': key,
      n: 'slow',
    });
    // A pull that never ends: the answer comes from the labels and names the image by digest.
    const stuck: DockerEngine = Object.assign(Object.create(engine) as DockerEngine, {
      imageRepoDigests: async () => [],
      pullImage: () => new Promise<void>(() => undefined),
    });
    expect(await session(stuck).movingAsExact(identity, key, DAY)).toMatchObject({ image: `${repository}@${digest}`, digest });
    // A pull that failed first: the engine cannot fetch the image, so `up` would fail on it.
    const refusing: DockerEngine = Object.assign(Object.create(engine) as DockerEngine, {
      imageRepoDigests: async () => [],
      pullImage: async () => Promise.reject(new Error('connection reset by peer')),
    });
    const s = session(refusing);
    expect((await s.moving).available).toBe(false);
    expect(await s.movingAsExact(identity, key, DAY)).toBeNull();
  }, 60_000);

  it("BuildKit's layer source does not wait for the pull; the classic builder's does", async () => {
    let release: () => void = () => undefined;
    const pulled = new Promise<void>((r) => (release = r));
    const slowPull: DockerEngine = Object.assign(Object.create(engine) as DockerEngine, {
      imageRepoDigests: async () => [],
      pullImage: async () => pulled,
    });
    const s = session(slowPull);
    expect(await s.layerSource(false)).toEqual({ available: true, reason: null });
    const waiting = s.layerSource(true);
    const first = await Promise.race([waiting.then(() => 'settled'), new Promise((r) => setTimeout(() => r('still pulling'), 500))]);
    expect(first).toBe('still pulling');
    release();
    expect(await waiting).toEqual({ available: true, reason: null });
  }, 60_000);
});
