// Node 2 (test/testbed/node2.sh: engine 26 with buildx) builds with BuildKit,
// pushes its cache, takes every unchanged step from it after a wipe, and the
// exact tag it pushed starts on node 1 (the classic builder's engine) as is.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedCacheRef } from '../support/cache-ref.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { missExactTag } from '../support/config-edit.js';
import { cleanUp, imageExists, wipeImages } from '../support/docker.js';
import { makeRepo, runId, twoStepFiles } from '../support/repos.js';
import { loadNode2, loadTestbed, node2Env } from '../support/testbed.js';

const tb = loadTestbed();
const node2 = loadNode2();
const run = runId('bk');
const namespace = `warmstart-test/${run}`;
const registry = `${tb.registry}/${namespace}`;
const ids = { cold: `${run}-n2a`, warm: `${run}-n2b`, node1: `${run}-n1` };

const files = twoStepFiles('buildkit node fixture');

const onNode2 = (args: string[]) => execa('docker', args, { env: { DOCKER_HOST: node2.dockerHost }, reject: false });

async function labelled(dockerHost?: string): Promise<string[]> {
  const r = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${run}`], {
    reject: false,
    ...(dockerHost ? { env: { DOCKER_HOST: dockerHost } } : {}),
  });
  return String(r.stdout).split('\n').filter(Boolean);
}

/** The tags the registry holds for this run's repository. */
async function registryTags(ref: string): Promise<string[]> {
  const path = ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
  const auth = Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64');
  const res = await fetch(`http://${tb.registry}/v2/${path}/tags/list`, { headers: { authorization: `Basic ${auth}` } });
  if (!res.ok) return [];
  return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
}

const events = (env: Record<string, string>, id: string) => readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson'), 'utf8');

describe('BuildKit on node 2 (engine 26 + buildx), exact images across builders', () => {
  let repo: string;
  let env2: Record<string, string>;
  let env1: Record<string, string>;
  let ref: string;
  let baseOnNode2Before = false;
  const up = (env: Record<string, string>, id: string) =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  beforeAll(async () => {
    repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `bk-${run}` });
    env2 = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry, ...node2Env(tb, node2) });
    env1 = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry });
    ref = expectedCacheRef(registry, repo, null, 'buildkit');
    baseOnNode2Before = await imageExists(tb.baseImage, node2.dockerHost);
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: [ids.cold, ids.warm], refs: [ref], dockerHost: node2.dockerHost });
    await cleanUp({ runId: run, workspaceIds: [ids.node1], refs: [ref] });
    // BuildKit's cache on node 2 holds this run's steps; node 1's classic builder keeps none.
    await onNode2(['builder', 'prune', '-af']);
    if (!baseOnNode2Before) await onNode2(['rmi', tb.baseImage]);
  });

  it('builds with BuildKit on node 2, takes every step from the registry after a wipe, and node 1 starts the exact image', async () => {
    // (a) cold on node 2: BuildKit builds (buildx, `#N [stage i/n] RUN` vertices, inline cache, no classic `Step i/n :`) and pushes.
    const cold = await up(env2, ids.cold);
    const first = parseResult(cold);
    expect(cold.code, cold.stderr).toBe(0);
    expect(first.outcome).toBe('ready');
    expect(first.profile).toBe('devcontainer');
    expect(first.cache).toMatchObject({ ref, hit: 'miss' });
    expect(first.cache.stepsTotal).toBe(2);
    expect(first.push).toMatchObject({ status: 'pushed', ref });
    const coldLog = await events(env2, ids.cold);
    expect(coldLog).toMatch(/Run: \S*docker buildx build /);
    expect(coldLog).toMatch(/#\d+ \[(?:\S+ )?\d+\/\d+\] RUN echo one/);
    expect(coldLog).toMatch(/#\d+ preparing layers for inline cache/);
    expect(coldLog).not.toMatch(/Step \d+\/\d+ :/);
    // It ran on node 2, not on node 1.
    expect((await labelled(node2.dockerHost)).length).toBeGreaterThan(0);
    expect(await labelled()).toEqual([]);

    // (b) node 2 wiped of this run (containers, volumes, images, pulled tags,
    // BuildKit's own cache), and another exact key for the same layers.
    await cleanUp({ runId: run, workspaceIds: [ids.cold], refs: [ref], dockerHost: node2.dockerHost });
    await wipeImages(run, [ref], node2.dockerHost);
    expect((await onNode2(['builder', 'prune', '-af'])).exitCode).toBe(0);
    expect(await labelled(node2.dockerHost)).toEqual([]);
    await missExactTag(repo);

    const warm = await up(env2, ids.warm);
    const second = parseResult(warm);
    expect(warm.code, warm.stderr).toBe(0);
    expect(second.outcome).toBe('ready');
    expect(second.cache).toMatchObject({ ref, hit: 'layers', reason: null });
    expect(second.cache.stepsTotal).toBe(first.cache.stepsTotal);
    expect(second.cache.stepsCached).toBe(second.cache.stepsTotal);
    expect(second.push).toMatchObject({ status: 'pushed', ref });
    const warmLog = await events(env2, ids.warm);
    expect(warmLog).toMatch(/Run: \S*docker buildx build /);
    expect(warmLog).toContain(`--cache-from ${ref}`);
    expect(warmLog).toMatch(/#\d+ CACHED/);
    const exactTags = (await registryTags(ref)).filter((t) => t.startsWith('exact-'));
    expect(exactTags.length).toBe(2);

    // (c) node 1 never built this repository; it starts node 2's exact image.
    expect(await labelled()).toEqual([]);
    const n1 = await up(env1, ids.node1);
    const third = parseResult(n1);
    expect(n1.code, n1.stderr).toBe(0);
    expect(third.outcome).toBe('ready');
    expect(third.cache.hit).toBe('exact');
    expect(third.cache.ref).toMatch(/:exact-[0-9a-f]{40}$/);
    expect(exactTags).toContain(third.cache.ref!.slice(third.cache.ref!.lastIndexOf(':') + 1));
    expect(third.push.status).toBe('skipped');
    const n1Log = await events(env1, ids.node1);
    expect(n1Log).not.toMatch(/Run: \S*docker (?:buildx )?build /);
    expect(n1Log).not.toMatch(/Step \d+\/\d+ :/);
    const inContainer = await execa('docker', ['exec', third.containerId!, 'cat', '/step-one', '/step-two']);
    expect(String(inContainer.stdout)).toBe('one\ntwo');
  });
});
