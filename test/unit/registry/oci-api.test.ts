import { afterAll, describe, expect, it } from 'vitest';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { putTinyManifest, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// The distribution calls against the testbed's registry with password auth.
const tb = loadTestbed();
const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
const ns = uniqueNamespace('ociapi');
const repos = [`${tb.registry}/${ns}/a/x`, `${tb.registry}/${ns}/a/y`, `${tb.registry}/${ns}/b/z`];
const api = createOciApi({ pageSize: 2 });

afterAll(async () => {
  for (const r of repos) {
    for (const tag of await api.listTags(r, creds).catch(() => [])) {
      const m = await api.getManifest(r, tag, creds).catch(() => null);
      if (m) await api.deleteManifest(r, m.digest, creds).catch(() => false);
    }
  }
});

describe('OCI distribution calls', () => {
  it('pages through tags and the catalog, reads manifests and blobs by digest, deletes by digest', async () => {
    const tags = ['t1', 't2', 't3', 't4', 't5'];
    const digests: string[] = [];
    for (const [i, t] of tags.entries()) digests.push(await putTinyManifest(api, repos[0]!, t, new Date(Date.UTC(2026, 0, i + 1)), creds));
    await putTinyManifest(api, repos[1]!, 'only', new Date(), creds);
    await putTinyManifest(api, repos[2]!, 'only', new Date(), creds);

    expect((await api.listTags(repos[0]!, creds)).sort()).toEqual(tags);
    const catalog = await api.catalog(tb.registry, creds);
    expect(catalog.filter((p) => p.startsWith(`${ns}/`))).toEqual([`${ns}/a/x`, `${ns}/a/y`, `${ns}/b/z`]);

    const m = (await api.getManifest(repos[0]!, 't3', creds))!;
    expect(m.digest).toBe(digests[2]);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse((await api.getBlob(repos[0]!, JSON.parse(m.bytes.toString()).config.digest, creds, 1 << 20))!.toString());
    expect(config.created).toBe('2026-01-03T00:00:00.000Z');
    await expect(api.getBlob(repos[0]!, JSON.parse(m.bytes.toString()).config.digest, creds, 10)).rejects.toThrow(/larger than 10 bytes/);

    expect(await api.deleteManifest(repos[0]!, digests[2]!, creds)).toBe(true);
    expect(await api.getManifest(repos[0]!, 't3', creds)).toBeNull();
    expect(await api.deleteManifest(repos[0]!, digests[2]!, creds)).toBe(false);
    expect((await api.listTags(repos[0]!, creds)).sort()).toEqual(['t1', 't2', 't4', 't5']);
    expect(await api.listTags(`${tb.registry}/${ns}/never/pushed`, creds)).toEqual([]);
    await expect(api.listTags(repos[0]!, null)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
    // The catalog is paged two at a time through bcrypt auth: on a registry many runs have filled, that takes a while.
  }, 120_000);

  it('a registry that refuses deletes says how to allow them', async () => {
    const open = createOciApi();
    // the read-only view of the same storage refuses every write, deletes included
    const r = `${tb.readonlyRegistry}/${ns}/a/x`;
    const m = await open.getManifest(r, 't1', creds);
    expect(m).not.toBeNull();
    const err = await open.deleteManifest(r, m!.digest, creds).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_ERROR', message: expect.stringMatching(/does not allow deleting manifests/) });
  });
});
