import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inUseRefs, pruneRegistry } from '../../../agent/src/cache/prune-run.js';
import { signatureTag } from '../../../agent/src/cache/signature-store.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { WorkspaceStore } from '../../../agent/src/state/workspace-store.js';
import { putTinyManifest, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// The real registry with password auth and delete enabled; manifests put through its API.
const tb = loadTestbed();
const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
const api = createOciApi();
const ns = uniqueNamespace('prune');
const repos = ['acme/one', 'acme/two', 'acme/three'].map((p) => `${tb.registry}/${ns}/${p}`);
const DAY = 86_400_000;
const now = new Date();
const exactTag = (r: number, i: number): string => `exact-${String(r * 100 + i).padStart(40, '0')}`;

afterAll(async () => {
  for (const repo of repos) {
    for (const tag of await api.listTags(repo, creds).catch(() => [])) {
      const m = await api.getManifest(repo, tag, creds).catch(() => null);
      if (m) await api.deleteManifest(repo, m.digest, creds).catch(() => false);
    }
  }
});

describe('prune against a real registry', () => {
  it('dry run changes nothing; --keep 2 leaves 2 exact tags per repository, the moving tags, signatures of kept ones, and a tag in use', async () => {
    // 12 exact tags over 3 repositories, 1 to 4 days old, a moving tag each; one exact tag also signed.
    const digests = new Map<string, string>();
    for (const [r, repo] of repos.entries()) {
      for (let i = 0; i < 4; i++)
        digests.set(`${repo}:${exactTag(r, i)}`, await putTinyManifest(api, repo, exactTag(r, i), new Date(now.getTime() - (i + 1) * DAY), creds));
      await putTinyManifest(api, repo, 'devcontainer-cache', new Date(now.getTime() - 10 * DAY), creds);
    }
    // repo one: the oldest exact image has a signature tag (it must go with it), the newest one too (it must stay)
    const one = repos[0]!;
    const oldDigest = digests.get(`${one}:${exactTag(0, 3)}`)!;
    const newDigest = digests.get(`${one}:${exactTag(0, 0)}`)!;
    await putTinyManifest(api, one, signatureTag(oldDigest), now, creds, 'sig-old');
    await putTinyManifest(api, one, signatureTag(newDigest), now, creds, 'sig-new');
    // repo two: its oldest exact tag is what a workspace on this node runs from
    const stateDir = mkdtempSync(join(tmpdir(), 'ws-prune-state-'));
    const store = new WorkspaceStore(stateDir);
    const inUseRef = `${repos[1]}:${exactTag(1, 3)}`;
    const result = {
      outcome: 'ready',
      workspaceId: 'w1',
      containerId: 'c',
      profile: 'devcontainer',
      cache: { ref: inUseRef, hit: 'exact', reason: null, stepsCached: null, stepsTotal: null },
      push: { status: 'skipped', ref: null, reason: 'exact hit', ms: null },
      controls: { noCache: false, noPush: false, pushTimeoutSeconds: 600 },
      timings: {},
      error: null,
    } as const;
    await store.save({
      id: 'w1',
      repository: 'x',
      configName: null,
      lightweight: false,
      status: 'ready',
      result,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    });
    const inUse = await inUseRefs(store);
    expect([...inUse]).toEqual([inUseRef]);

    const tagsNow = async () => Object.fromEntries(await Promise.all(repos.map(async (r) => [r, (await api.listTags(r, creds)).sort()] as const)));
    const before = await tagsNow();
    expect(
      Object.values(before)
        .flat()
        .filter((t) => t.startsWith('exact-')),
    ).toHaveLength(12);

    const policy = { keep: 2, olderThanMs: null, now: new Date() };
    const dry = await pruneRegistry({ host: tb.registry, namespace: ns, policy, dryRun: true, creds, inUse });
    expect(dry.repositories).toBe(3);
    expect(dry.removed.map((x) => `${x.repository}:${x.tags.join()}`).sort()).toEqual(
      [
        `${one}:${exactTag(0, 2)}`,
        `${one}:${exactTag(0, 3)}`,
        `${repos[1]}:${exactTag(1, 2)}`,
        `${repos[2]}:${exactTag(2, 2)}`,
        `${repos[2]}:${exactTag(2, 3)}`,
      ].sort(),
    );
    expect(dry.removed.every((x) => !x.deleted)).toBe(true);
    expect(dry.spared).toEqual([{ repository: repos[1], tag: exactTag(1, 3), why: 'a workspace on this node runs from it' }]);
    expect(await tagsNow()).toEqual(before);

    const real = await pruneRegistry({ host: tb.registry, namespace: ns, policy, dryRun: false, creds, inUse });
    expect(real.errors).toEqual([]);
    expect(real.removed.every((x) => x.deleted)).toBe(true);
    const after = await tagsNow();
    const exactLeft = Object.values(after)
      .flat()
      .filter((t) => t.startsWith('exact-'));
    expect(exactLeft).toHaveLength(7); // 2 per repository, and the one in use
    expect(after[one]).toEqual([exactTag(0, 0), exactTag(0, 1), 'devcontainer-cache', signatureTag(newDigest)].sort());
    expect(after[repos[1]!]).toEqual([exactTag(1, 0), exactTag(1, 1), exactTag(1, 3), 'devcontainer-cache'].sort());
    for (const r of repos) expect(after[r]).toContain('devcontainer-cache');
    // the deleted digests are gone, not only their tags
    expect(await api.getManifest(one, oldDigest, creds)).toBeNull();

    // A second run with nothing in use: the spared tag goes now, the count holds at 2 per repository.
    const again = await pruneRegistry({ host: tb.registry, namespace: ns, policy, dryRun: false, creds, inUse: new Set() });
    expect(again.removed.map((x) => x.tags.join())).toEqual([exactTag(1, 3)]);
    expect(
      Object.values(await tagsNow())
        .flat()
        .filter((t) => t.startsWith('exact-')),
    ).toHaveLength(6);
  }, 120_000);

  it('refuses ghcr.io, naming the GitHub packages API', async () => {
    const err = await pruneRegistry({
      host: 'ghcr.io',
      namespace: 'acme',
      policy: { keep: 1, olderThanMs: null, now },
      dryRun: true,
      creds: null,
      inUse: new Set(),
    }).catch((e: unknown) => e);
    expect(isWarmstartError(err, 'REGISTRY_UNSUPPORTED')).toBe(true);
    expect((err as Error).message).toMatch(/packages API/);
  });
});
