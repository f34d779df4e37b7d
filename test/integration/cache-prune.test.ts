import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOciApi } from '../../agent/src/registry/oci-api.js';
import { WorkspaceStore } from '../../agent/src/state/workspace-store.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, wipeImages } from '../support/docker.js';
import { putTinyManifest } from '../support/registry-images.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

/**
 * `warmstart cache prune` with the real CLI against the real registry:
 * 12 exact tags over 3 repositories (one of them pushed by a real `up`, the
 * others put through the registry API with chosen ages) plus moving tags.
 */
const tb = loadTestbed();
const run = runId('prune');
const registry = `${tb.registry}/warmstart-test/${run}`;
const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
const api = createOciApi();
const ids = { first: `${run}-first`, again: `${run}-again` };
const DAY = 86_400_000;
const files = {
  '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
  '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo pruned > /made-by\n',
};

describe('warmstart cache prune', () => {
  let repo: string;
  let env: Record<string, string>;
  let movingRef = '';
  let exactRef = '';
  const repositories: string[] = [];
  const prune = (...args: string[]) =>
    runCli(['cache', 'prune', '--registry', registry, ...args, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });
  const exactTags = async (): Promise<Record<string, string[]>> =>
    Object.fromEntries(
      await Promise.all(repositories.map(async (r) => [r, (await api.listTags(r, creds)).filter((t) => t.startsWith('exact-')).sort()] as const)),
    );
  const allTags = async () =>
    Object.fromEntries(await Promise.all(repositories.map(async (r) => [r, (await api.listTags(r, creds)).sort()] as const)));

  beforeAll(async () => {
    repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'pruned' });
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs: [movingRef, exactRef].filter(Boolean) });
    for (const r of repositories) {
      for (const tag of await api.listTags(r, creds).catch(() => [])) {
        const m = await api.getManifest(r, tag, creds).catch(() => null);
        if (m) await api.deleteManifest(r, m.digest, creds).catch(() => false);
      }
    }
  });

  it('dry run changes nothing; --keep 2 spares a tag in use, then leaves 6 exact tags and every moving tag; a start still hits', async () => {
    const firstRun = await runCli(
      ['up', repo, '--workspace-id', ids.first, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'],
      {
        env,
        input: `${tb.registryPassword}\n`,
      },
    );
    const first = parseResult(firstRun);
    expect(first.outcome, firstRun.stderr).toBe('ready');
    expect(first.push.status).toBe('pushed');
    movingRef = first.cache.ref!;
    const real = movingRef.slice(0, movingRef.lastIndexOf(':'));
    exactRef = `${real}:${(await api.listTags(real, creds)).find((t) => t.startsWith('exact-'))}`;
    repositories.push(real, `${registry}/acme/other-one`, `${registry}/acme/other-two`);
    const now = Date.now();
    // 3 older exact tags beside the real one; 4 in each other repository, with a moving tag.
    for (const [r, repository] of repositories.entries()) {
      for (let i = r === 0 ? 1 : 0; i < 4; i++) {
        await putTinyManifest(api, repository, `exact-${String(r * 10 + i).padStart(40, '0')}`, new Date(now - (i + 1) * DAY), creds);
      }
      if (r > 0) await putTinyManifest(api, repository, 'devcontainer-cache', new Date(now - 30 * DAY), creds);
    }
    const before = await allTags();
    expect(Object.values(await exactTags()).flat()).toHaveLength(12);

    // A workspace on this node runs from the oldest exact tag of other-one.
    const inUse = `${repositories[1]}:exact-${String(13).padStart(40, '0')}`;
    const store = new WorkspaceStore(env.WARMSTART_STATE_DIR!);
    const record = (await store.load(ids.first))!;
    await store.save({
      ...record,
      id: 'in-use',
      result: { ...record.result!, workspaceId: 'in-use', cache: { ...record.result!.cache, ref: inUse, hit: 'exact' } },
    });

    const dryRun = await prune('--keep', '2', '--dry-run');
    expect(dryRun.code, dryRun.stderr).toBe(0);
    const dry = JSON.parse(dryRun.stdout) as {
      dryRun: boolean;
      removed: { repository: string; tags: string[]; deleted: boolean }[];
      spared: { tag: string }[];
    };
    expect(dry.dryRun).toBe(true);
    expect(dry.removed).toHaveLength(5);
    expect(dry.removed.every((x) => !x.deleted)).toBe(true);
    expect(dry.spared.map((s) => s.tag)).toEqual([inUse.slice(inUse.lastIndexOf(':') + 1)]);
    expect(await allTags()).toEqual(before);

    const spareRun = await prune('--keep', '2');
    expect(spareRun.code, spareRun.stderr).toBe(0);
    expect(Object.values(await exactTags()).flat()).toHaveLength(7);
    expect((await exactTags())[repositories[1]!]).toContain(inUse.slice(inUse.lastIndexOf(':') + 1));

    await store.remove('in-use');
    const pruneRun = await prune('--keep', '2');
    expect(pruneRun.code, pruneRun.stderr).toBe(0);
    const left = await exactTags();
    expect(Object.values(left).flat()).toHaveLength(6);
    for (const r of repositories) expect(left[r]).toHaveLength(2);
    expect(left[real]).toContain(exactRef.slice(exactRef.lastIndexOf(':') + 1));
    for (const r of repositories) expect(await api.listTags(r, creds)).toContain('devcontainer-cache');

    // The repository still starts on a wiped node, from its exact image.
    await cleanUp({ runId: run, workspaceIds: [ids.first] });
    await wipeImages(run, [movingRef, exactRef]);
    const againRun = await runCli(
      ['up', repo, '--workspace-id', ids.again, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'],
      {
        env,
        input: `${tb.registryPassword}\n`,
      },
    );
    const again = parseResult(againRun);
    expect(again.outcome, againRun.stderr).toBe('ready');
    expect(again.cache.hit).toBe('exact');
  });

  it("refuses ghcr.io with REGISTRY_UNSUPPORTED, naming GitHub's packages API", async () => {
    const r = await runCli(['cache', 'prune', '--registry', 'ghcr.io/acme', '--keep', '2', '--json'], { env });
    expect(r.code).toBe(2);
    const body = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('REGISTRY_UNSUPPORTED');
    expect(body.error.message).toMatch(/packages API/);
  });
});
