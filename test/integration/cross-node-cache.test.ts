import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, imageExists, wipeImages } from '../support/docker.js';
import { missExactTag } from '../support/config-edit.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

const tb = loadTestbed();
const run = runId('xnode');
const namespace = `warmstart-test/${run}`;
const ids = [`${run}-a`, `${run}-b`];

describe('cross-node cache hit (real engine, registry, devcontainers CLI)', () => {
  let repo: string;
  let env: Record<string, string>;
  let ref: string;

  beforeAll(async () => {
    repo = await makeRepo('slow-feature', { runId: run, baseImage: tb.baseImage, owner: 'Acme', name: 'Slow-Feature' });
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}` });
    ref = expectedCacheRef(`${tb.registry}/${namespace}`, repo);
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: ids, refs: [ref] });
  });

  it('pushes the cache on a cold start, then a wiped engine builds every step from it', async () => {
    const args = (id: string) => ['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'];

    const cold = await runCli(args(ids[0]!), { env, input: `${tb.registryPassword}\n` });
    const first = parseResult(cold);
    expect(cold.code, cold.stderr).toBe(0);
    expect(first.outcome).toBe('ready');
    expect(first.profile).toBe('devcontainer');
    expect(first.cache).toMatchObject({ ref, hit: 'miss' });
    expect(first.cache.reason).toMatch(/CACHE_IMAGE_MISSING/);
    expect(first.cache.stepsTotal).toBeGreaterThan(0);
    expect(first.cache.stepsCached).toBeLessThan(first.cache.stepsTotal!);
    expect(first.push).toMatchObject({ status: 'pushed', ref });

    // The layer cache on its own: a config change no build step reads gives
    // another exact key (an exact hit, tested in exact-hit.test.ts, would skip the build).
    await missExactTag(repo);
    // A node that never saw the repository: every image the fixture built is gone.
    await cleanUp({ runId: run, workspaceIds: [ids[0]!], refs: [ref] });
    await wipeImages(run, [ref]);
    expect(await imageExists(ref)).toBe(false);

    const warm = await runCli(args(ids[1]!), { env, input: `${tb.registryPassword}\n` });
    const second = parseResult(warm);
    expect(warm.code, warm.stderr).toBe(0);
    expect(second.outcome).toBe('ready');
    expect(second.cache).toMatchObject({ ref, hit: 'layers', reason: null });
    expect(second.cache.stepsTotal).toBe(first.cache.stepsTotal);
    expect(second.cache.stepsCached).toBe(second.cache.stepsTotal);
    // The slow step (6 s) and the feature install (3 s) did not run again.
    expect(second.timings.up!).toBeLessThan(first.timings.up!);

    // The log proves the builder used our image: the CLI passed it as --cache-from.
    const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids[1]!, 'events.ndjson'), 'utf8');
    expect(events).toContain(`--cache-from ${ref}`);
    // ready is reported before the push: the outcome event precedes the push event.
    const types = events.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types.indexOf('outcome')).toBeGreaterThan(-1);
    expect(types.indexOf('outcome')).toBeLessThan(types.indexOf('push'));
  });
});
