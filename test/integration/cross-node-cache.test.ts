import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { imageExists } from '../support/docker.js';
import { missExactTag } from '../support/config-edit.js';
import { forgetRun, labelledImages } from '../support/node-docker.js';
import { crossNodePairs } from '../support/nodes.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

const tb = loadTestbed();

// Per builder: the cold start on one node pushes, the next start on another
// node (which never saw the repository) takes every step from the registry.
// Under BuildKit that node reads the cache from the registry itself, and the
// fixture's local feature (slow-tool) is built by the CLI's generated
// Dockerfile: those steps must hit too.
describe.each(crossNodePairs())('cross-node cache hit, $builder builder (real engines, registry, devcontainers CLI)', (pair) => {
  const run = runId(pair.builder === 'buildkit' ? 'xnbk' : 'xnode');
  const namespace = `warmstart-test/${run}`;
  const ids = [`${run}-a`, `${run}-b`];
  let repo: string;
  let buildEnv: Record<string, string>;
  let startEnv: Record<string, string>;
  let ref: string;

  beforeAll(async () => {
    repo = await makeRepo('slow-feature', { runId: run, baseImage: tb.baseImage, owner: 'Acme', name: 'Slow-Feature' });
    buildEnv = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}`, ...pair.build.env });
    startEnv = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}`, ...pair.start.env });
    ref = expectedCacheRef(`${tb.registry}/${namespace}`, repo, null, pair.builder);
    // BuildKit keys its own cache by content, not by this run's LABEL: another
    // suite's build of the same fixture on the start node would serve the steps.
    await forgetRun(pair.start, { runId: run });
  });
  afterAll(async () => {
    await forgetRun(pair.build, { runId: run, workspaceIds: ids, refs: [ref] });
    await forgetRun(pair.start, { runId: run, workspaceIds: ids, refs: [ref] });
  });

  it(`pushes the cache on a cold start on ${pair.build.name}, then ${pair.start.name}, which never saw the repository, builds every step from it`, async () => {
    const args = (id: string) => ['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'];

    const cold = await runCli(args(ids[0]!), { env: buildEnv, input: `${tb.registryPassword}\n` });
    const first = parseResult(cold);
    expect(cold.code, cold.stderr).toBe(0);
    expect(first.outcome).toBe('ready');
    expect(first.profile).toBe('devcontainer');
    expect(first.cache).toMatchObject({ ref, hit: 'miss' });
    expect(first.cache.reason).toMatch(/CACHE_IMAGE_MISSING/);
    expect(first.cache.stepsTotal).toBeGreaterThan(0);
    expect(first.cache.stepsCached).toBeLessThan(first.cache.stepsTotal!);
    expect(first.push).toMatchObject({ status: 'pushed', ref });
    const coldLog = await readFile(join(buildEnv.WARMSTART_STATE_DIR!, 'workspaces', ids[0]!, 'events.ndjson'), 'utf8');
    if (pair.builder === 'buildkit') expect(coldLog).toMatch(/Run: \S*docker buildx build /);
    else expect(coldLog).toMatch(/Step \d+\/\d+ :/);

    // The layer cache on its own: a config change no build step reads gives
    // another exact key (an exact hit, tested in exact-hit.test.ts, would skip the build).
    await missExactTag(repo);
    // The other node never saw the repository: none of the run's images, no moving tag.
    expect(await labelledImages(pair.start, run)).toEqual([]);
    expect(await imageExists(ref, pair.start.dockerHost)).toBe(false);

    const warm = await runCli(args(ids[1]!), { env: startEnv, input: `${tb.registryPassword}\n` });
    const second = parseResult(warm);
    expect(warm.code, warm.stderr).toBe(0);
    expect(second.outcome).toBe('ready');
    expect(second.cache).toMatchObject({ ref, hit: 'layers', reason: null });
    expect(second.cache.stepsTotal).toBe(first.cache.stepsTotal);
    expect(second.cache.stepsCached).toBe(second.cache.stepsTotal);
    // The slow step (6 s) and the feature install (3 s) did not run again.
    expect(second.timings.up!).toBeLessThan(first.timings.up!);

    // The log proves the builder used our image: the CLI passed it as --cache-from.
    const events = await readFile(join(startEnv.WARMSTART_STATE_DIR!, 'workspaces', ids[1]!, 'events.ndjson'), 'utf8');
    expect(events).toContain(`--cache-from ${ref}`);
    if (pair.builder === 'buildkit') {
      expect(events).toMatch(/Run: \S*docker buildx build /);
      expect(events).toMatch(/#\d+ CACHED/);
      expect(events).not.toMatch(/Step \d+\/\d+ :/);
    } else {
      expect(events).toMatch(/ ---> Using cache/);
    }
    // It ran on the start node, not on the build node's engine again.
    expect((await labelledImages(pair.start, run)).length).toBeGreaterThan(0);
    // ready is reported before the push: the outcome event precedes the push event.
    const types = events
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types.indexOf('outcome')).toBeGreaterThan(-1);
    expect(types.indexOf('outcome')).toBeLessThan(types.indexOf('push'));
  });
});
