import { generateKeyPairSync } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSigningKey, parseTrustedKey } from '../../../agent/src/cache/signature.js';
import { signatureRefusal, signatureTag, signPushed } from '../../../agent/src/cache/signature-store.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { pushTinyImage, putTinyManifest, removeLabelled, removeLocal, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// Against the testbed's open registry (no auth, delete enabled) and the real engine.
const tb = loadTestbed();
const ns = uniqueNamespace('sigstore');
const repository = `${tb.openRegistry}/${ns}/acme/widgets`;
const identity = 'github.com/acme/widgets';
const api = createOciApi();
const engine = new DockerodeEngine();
const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    key: parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' })),
    trusted: parseTrustedKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'test.pub'),
  };
};
const ours = pair();
const theirs = pair();
const made: string[] = [];

afterAll(async () => {
  await removeLocal(made);
  await removeLabelled(ns);
  // The registry keeps blobs until its garbage collection; the manifests go.
  for (const tag of await api.listTags(repository, null)) {
    const m = await api.getManifest(repository, tag, null);
    if (m) await api.deleteManifest(repository, m.digest, null).catch(() => false);
  }
});

describe('signatures in a real registry', () => {
  it('verifies against the registry with password auth (each call answers its challenge), and says so when it cannot read the signature', async () => {
    const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
    const repo = `${tb.registry}/${ns}/acme/widgets`;
    // An image manifest put through the API: no docker login on this machine.
    const digest = await putTinyManifest(api, repo, 'devcontainer-cache', new Date(), creds);
    const ref = `${repo}:devcontainer-cache`;
    const engineStub = { imageRepoDigests: async () => [`${repo}@${digest}`] };
    try {
      expect(await signPushed({ engine: engineStub, ref, key: ours.key, identity, contentKey: null, creds })).toBe(digest);
      // Its cost is a bench row (test/bench/signature.ts), not a test.
      expect(await signatureRefusal({ repository: repo, digest, identity, contentKey: null, trusted: [ours.trusted], creds })).toBeNull();
      expect(await signatureRefusal({ repository: repo, digest, identity, contentKey: null, trusted: [ours.trusted], creds: null })).toMatch(
        /^CACHE_SIGNATURE_INVALID: .*signature not read: REGISTRY_AUTH_FAILED/,
      );
    } finally {
      for (const tag of await api.listTags(repo, creds)) {
        const m = await api.getManifest(repo, tag, creds);
        if (m) await api.deleteManifest(repo, m.digest, creds).catch(() => false);
      }
    }
  });

  it('signs a pushed moving and exact tag beside the image; a re-push without a key is refused', async () => {
    const moving = `${repository}:devcontainer-cache`;
    const exact = `${repository}:exact-${'e'.repeat(40)}`;
    made.push(moving, exact);
    const movingDigest = await pushTinyImage(moving, tb.baseImage, { 'warmstart.test': ns, n: '1' });
    const exactDigest = await pushTinyImage(exact, tb.baseImage, { 'warmstart.test': ns, n: '2' });
    const contentKey = 'e'.repeat(64);

    expect(await signPushed({ engine, ref: moving, key: ours.key, identity, contentKey: null, creds: null })).toBe(movingDigest);
    expect(await signPushed({ engine, ref: exact, key: ours.key, identity, contentKey, creds: null })).toBe(exactDigest);
    expect(await api.listTags(repository, null)).toEqual(expect.arrayContaining([signatureTag(movingDigest), signatureTag(exactDigest)]));
    const sigManifest = JSON.parse((await api.getManifest(repository, signatureTag(exactDigest), null))!.bytes.toString());
    expect(sigManifest.subject.digest).toBe(exactDigest);
    expect(sigManifest.layers).toHaveLength(1);

    const trusted = [ours.trusted];
    const check = (digest: string, key: string | null, keys = trusted) =>
      signatureRefusal({ repository, digest, identity, contentKey: key, trusted: keys, creds: null });
    expect(await check(movingDigest, null)).toBeNull();
    expect(await check(exactDigest, contentKey)).toBeNull();
    expect(await check(exactDigest, 'f'.repeat(64))).toMatch(/^CACHE_SIGNATURE_INVALID: .*signed for content key/);
    expect(await check(movingDigest, null, [theirs.trusted])).toMatch(/^CACHE_SIGNATURE_INVALID: .*not trusted/);
    expect(
      await signatureRefusal({ repository, digest: movingDigest, identity: 'github.com/acme/other', contentKey: null, trusted, creds: null }),
    ).toMatch(/signed for repository/);

    // Someone without the key overwrites the moving tag: the new digest has no signature.
    const forged = await pushTinyImage(moving, tb.baseImage, { 'warmstart.test': ns, n: '3' });
    expect(forged).not.toBe(movingDigest);
    expect(await check(forged, null)).toMatch(/^CACHE_SIGNATURE_INVALID: .*no signature/);
    // A signer refuses to sign a tag that no longer holds the image this engine pushed.
    await removeLocal([moving]);
    await execTag(exact, moving);
    await expect(signPushed({ engine, ref: moving, key: ours.key, identity, contentKey: null, creds: null })).rejects.toThrow(
      /not at the image this node pushed/,
    );
  }, 120_000);
});

async function execTag(from: string, to: string): Promise<void> {
  await execa('docker', ['tag', from, to]);
}
