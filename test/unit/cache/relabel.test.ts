import { afterAll, describe, expect, it } from 'vitest';
import { readImageConfig, relabelInRegistry } from '../../../agent/src/cache/relabel.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { deleteAllTags, pushTinyImage, removeLabelled, removeLocal, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// Labelling in the registry itself, against the testbed's open registry.
const tb = loadTestbed();
const ns = uniqueNamespace('relabel');
const repository = `${tb.openRegistry}/${ns}/acme/app`;
const api = createOciApi();
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

afterAll(async () => {
  await removeLocal([`${repository}:pushed`]);
  await removeLabelled(ns);
  await deleteAllTags(api, repository);
});

async function configOf(tag: string): Promise<Record<string, unknown>> {
  const m = JSON.parse((await api.getManifest(repository, tag, null))!.bytes.toString('utf8')) as { config: { digest: string } };
  return JSON.parse((await api.getBlob(repository, m.config.digest, null, 1 << 20))!.toString('utf8')) as Record<string, unknown>;
}

describe('relabelInRegistry', () => {
  it('puts one labelled manifest under every tag, keeping every other config field and the layers', async () => {
    const digest = await pushTinyImage(`${repository}:pushed`, tb.baseImage, { 'warmstart.test': ns, mine: 'kept' });
    const before = await configOf('pushed');
    const now = new Date('2026-12-01T10:00:00.000Z');
    const labelled = await relabelInRegistry({
      repository,
      digest,
      labels: { 'dev.warmstart.content-key': 'k1' },
      tags: ['exact-x', 'moving'],
      creds: null,
      api,
      now: () => now,
    });
    expect(labelled).not.toBeNull();
    const exact = await api.getManifest(repository, 'exact-x', null);
    const moving = await api.getManifest(repository, 'moving', null);
    expect(exact!.digest).toBe(labelled!.digest);
    expect(moving!.digest).toBe(labelled!.digest);
    expect(labelled!.digest).not.toBe(digest);
    // The same layers as the pushed image.
    const layers = (tag: string) =>
      api.getManifest(repository, tag, null).then((m) => (JSON.parse(m!.bytes.toString('utf8')) as { layers: unknown }).layers);
    expect(await layers('exact-x')).toEqual(await layers('pushed'));

    const after = await configOf('exact-x');
    const inner = (c: Record<string, unknown>) => c.config as { Labels: Record<string, string> };
    expect(inner(after).Labels).toEqual({ ...inner(before).Labels, 'dev.warmstart.content-key': 'k1' });
    expect(after.created).toBe(now.toISOString());
    // Everything else (history, rootfs, the rest of the runtime config) as the builder wrote it.
    const strip = (c: Record<string, unknown>) => ({ ...c, created: null, config: { ...inner(c), Labels: null } });
    expect(strip(after)).toEqual(strip(before));

    const facts = await readImageConfig(api, repository, 'moving', null);
    expect(facts).toEqual({ digest: labelled!.digest, labels: inner(after).Labels, created: now.toISOString() });
  }, 60_000);

  it("keeps fields it does not know, such as BuildKit's inline cache metadata", async () => {
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Labels: { a: 'b' } },
        rootfs: { type: 'layers', diff_ids: [] },
        history: [{ created_by: 'RUN x # buildkit' }],
        'moby.buildkit.cache.v0': 'eyJsYXllcnMiOltdfQ==',
      }),
    );
    const configDigest = await api.putBlob(repository, config, null);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers: [],
      }),
    );
    const digest = await api.putManifest(repository, 'bk', manifest, OCI_MANIFEST, null);
    const labelled = await relabelInRegistry({ repository, digest, labels: { x: 'y' }, tags: ['bk-labelled'], creds: null, api });
    expect(labelled!.mediaType).toBe(OCI_MANIFEST);
    const after = await configOf('bk-labelled');
    expect(after['moby.buildkit.cache.v0']).toBe('eyJsYXllcnMiOltdfQ==');
    expect(after.history).toEqual([{ created_by: 'RUN x # buildkit' }]);
    expect((after.config as { Labels: unknown }).Labels).toEqual({ a: 'b', x: 'y' });
  }, 60_000);

  it('leaves an index alone (null: the caller labels through the engine) and reads no facts from it', async () => {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    const digest = await api.putManifest(repository, 'index', index, 'application/vnd.oci.image.index.v1+json', null);
    expect(await relabelInRegistry({ repository, digest, labels: { x: 'y' }, tags: ['never'], creds: null, api })).toBeNull();
    expect(await api.getManifest(repository, 'never', null)).toBeNull();
    expect(await readImageConfig(api, repository, 'index', null)).toBeNull();
    expect(await readImageConfig(api, repository, 'no-such-tag', null)).toBeNull();
  }, 60_000);
});
