import { generateKeyPairSync } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { pushCache } from '../../../agent/src/cache/push-cache.js';
import { parseSigningKey, parseTrustedKey } from '../../../agent/src/cache/signature.js';
import { cacheSigner, signatureRefusal } from '../../../agent/src/cache/signature-store.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { deleteAllTags, removeLabelled, removeLocal, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// pushCache with the real engine and the testbed's open registry.
const tb = loadTestbed();
const ns = uniqueNamespace('pushsign');
const repository = `${tb.openRegistry}/${ns}/acme/app`;
const moving = `${repository}:devcontainer-cache`;
const exact = `${repository}:exact-${'a'.repeat(40)}`;
const engine = new DockerodeEngine();
const api = createOciApi();
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
const trusted = [parseTrustedKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k.pub')];
const identity = 'github.com/acme/app';
let imageId = '';

afterAll(async () => {
  await removeLocal([moving, exact, `${ns}-src`]);
  await removeLabelled(ns);
  await deleteAllTags(api, repository);
});

describe('pushCache with a signer', () => {
  it('signs the moving and the exact tag right after their pushes', async () => {
    await execa('docker', ['build', '-q', '-t', `${ns}-src`, '-'], { input: `FROM ${tb.baseImage}\nLABEL warmstart.test=${ns}\n` });
    imageId = (await engine.imageId(`${ns}-src`))!;
    const result = await pushCache({
      engine,
      imageId,
      refs: [moving],
      exact: { ref: exact, labels: { 'dev.warmstart.repository': identity } },
      auth: undefined,
      timeoutMs: 60_000,
      sign: cacheSigner({ engine, key, identity, creds: null, exact: { ref: exact, key: 'a'.repeat(64) } }),
    });
    expect(result).toMatchObject({ status: 'pushed', reason: null });
    const movingDigest = (await api.getManifest(repository, 'devcontainer-cache', null))!.digest;
    const exactDigest = (await api.getManifest(repository, `exact-${'a'.repeat(40)}`, null))!.digest;
    // One labelled manifest under both tags (relabel.ts), signed once with the content key.
    expect(movingDigest).toBe(exactDigest);
    expect(await signatureRefusal({ repository, digest: movingDigest, identity, contentKey: null, trusted, creds: null })).toBeNull();
    expect(await signatureRefusal({ repository, digest: exactDigest, identity, contentKey: 'a'.repeat(64), trusted, creds: null })).toBeNull();
  }, 60_000);

  it('a signing failure leaves the push pushed, and its result says so', async () => {
    const result = await pushCache({
      engine,
      imageId,
      refs: [moving],
      auth: undefined,
      timeoutMs: 60_000,
      // an engine that does not know the pushed image: the signer refuses to vouch for the tag
      sign: cacheSigner({ engine: { imageRepoDigests: async () => [] }, key, identity, creds: null, exact: null }),
    });
    expect(result.status).toBe('pushed');
    expect(result.reason).toMatch(/^pushed but not signed: .*devcontainer-cache: .*not at the image this node pushed/);
  }, 60_000);

  it('a registry that cannot serve the pushed manifest back gets the exact image labelled through the engine', async () => {
    const result = await pushCache({
      engine,
      imageId,
      refs: [moving],
      exact: { ref: exact, labels: { 'dev.warmstart.repository': identity, 'dev.warmstart.content-key': 'b'.repeat(64) } },
      auth: undefined,
      timeoutMs: 60_000,
      relabel: async () => {
        throw new Error('registry 127.0.0.1: GET manifest answered HTTP 503');
      },
    });
    expect(result).toMatchObject({ status: 'pushed', reason: 'labelled through the engine: registry 127.0.0.1: GET manifest answered HTTP 503' });
    // The exact tag holds a labelled copy; the moving tag is the image as built (its digest differs).
    const config = async (tag: string) => {
      const m = JSON.parse((await api.getManifest(repository, tag, null))!.bytes.toString('utf8')) as { config: { digest: string } };
      return JSON.parse((await api.getBlob(repository, m.config.digest, null, 1 << 20))!.toString('utf8')) as {
        config: { Labels?: Record<string, string> };
      };
    };
    expect((await config(`exact-${'a'.repeat(40)}`)).config.Labels?.['dev.warmstart.content-key']).toBe('b'.repeat(64));
    expect((await config('devcontainer-cache')).config.Labels?.['dev.warmstart.content-key']).toBeUndefined();
  }, 60_000);
});
