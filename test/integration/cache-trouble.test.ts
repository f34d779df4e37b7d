import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { WorkspaceResult } from '../../shared/src/workspace-result.js';
import { parseResult, runCli, testEnv, type CliRun } from '../support/cli.js';
import { containersWithLabel } from '../support/docker.js';
import { missExactTag } from '../support/config-edit.js';
import { startEngineGateProxy, type EngineGateProxy } from '../support/engine-gate-proxy.js';
import { forgetRun } from '../support/node-docker.js';
import { crossNodePairs, testNodes, type TestNode } from '../support/nodes.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy } from '../support/throttle-proxy.js';
import { expectedCacheRef } from '../support/cache-ref.js';

/**
 * Registry trouble never fails a workspace (docs/how-it-works.md "Pipeline" steps 6, 10, 11): with
 * the registry stopped, the password wrong, pushes denied, or a push slower
 * than its timeout, `up` still ends ready with the repo's own dev container,
 * and the cause is in cache.reason / push.reason.
 */
const tb = loadTestbed();
const nodes = testNodes(tb);
// The registry-trouble cases a BuildKit build meets on its own (it reads the
// cache from the registry itself; the agent does not wait for the pull) run on
// node 2 as well; the push timeout is the engine's `docker push`, the same for both builders.
const builders = [nodes.node1, nodes.node2];

interface Case {
  run: string;
  id: string;
  repo: string;
  env: Record<string, string>;
  refs: string[];
  node: TestNode;
  /** other workspaces of the case, on other nodes */
  more: { id: string; node: TestNode }[];
}

const cases: Case[] = [];
const proxies: { close(): Promise<void> }[] = [];

/** One scenario's own run id, workspace, repository (the `small` fixture) and state dir, on `node` (default node 1). */
async function scenario(prefix: string, node: TestNode = nodes.node1): Promise<Case> {
  const run = runId(node.builder === 'buildkit' ? `${prefix}bk` : prefix);
  const c: Case = {
    run,
    id: `${run}-ws`,
    repo: await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'small' }),
    env: await testEnv(tb.baseImage, node.env),
    refs: [],
    node,
    more: [],
  };
  cases.push(c);
  return c;
}

/** `up --json` against `registry` (host:port) with the given password on stdin. */
function up(
  c: Case,
  registry: string,
  password: string,
  extra: string[] = [],
  on: { id: string; node: TestNode; env: Record<string, string> } = c,
): Promise<CliRun> {
  const namespace = `warmstart-test/${c.run}`;
  c.refs.push(expectedCacheRef(`${registry}/${namespace}`, c.repo, null, on.node.builder));
  return runCli(
    [
      'up',
      c.repo,
      '--workspace-id',
      on.id,
      '--cache-registry',
      `${registry}/${namespace}`,
      '--registry-username',
      tb.registryUser,
      '--registry-password-stdin',
      ...extra,
      '--json',
    ],
    { env: on.env, input: `${password}\n` },
  );
}

/** What every case shares: ready with the repo's config, one container, ready timed. */
async function expectReady(c: Case, cli: CliRun): Promise<WorkspaceResult> {
  const r = parseResult(cli); // exactly one JSON object on stdout
  expect(cli.code, cli.stderr).toBe(0);
  expect(r.outcome).toBe('ready');
  expect(r.profile).toBe('devcontainer');
  expect(r.error).toBeNull();
  expect(r.workspaceId).toBe(c.id);
  expect(r.containerId).toMatch(/^[0-9a-f]{64}$/);
  expect(await containersWithLabel(`warmstart.workspace=${c.id}`, c.node.dockerHost)).toEqual([r.containerId!.slice(0, 12)]);
  expect(r.timings.ready).toBeGreaterThan(0);
  expect(r.timings.ready).toBeLessThanOrEqual(cli.wallMs);
  expect(r.cache.ref).toBe(c.refs.at(-1));
  expect(r.push.status).not.toBe('pushed');
  expect(r.push.status).not.toBe('pending');
  expect(r.push.reason).toBeTruthy();
  return r;
}

async function eventTypes(c: Case): Promise<string[]> {
  const text = await readFile(join(c.env.WARMSTART_STATE_DIR!, 'workspaces', c.id, 'events.ndjson'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { type: string }).type);
}

afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const c of cases) {
    await forgetRun(c.node, { runId: c.run, workspaceIds: [c.id], refs: c.refs });
    for (const m of c.more) await forgetRun(m.node, { runId: c.run, workspaceIds: [m.id], refs: c.refs });
    await rm(c.env.WARMSTART_STATE_DIR!, { recursive: true, force: true });
    await rm(join(c.repo, '..', '..'), { recursive: true, force: true });
  }
});

describe('cache trouble never fails a workspace (real engine, registry, devcontainers CLI)', () => {
  it.each(builders)('registry stopped: cache miss REGISTRY_UNREACHABLE, push failed, still ready ($builder builder)', async (node) => {
    const c = await scenario('regdown', node);
    // A port where a registry answered a moment ago and now nobody listens.
    const proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: Infinity });
    const alive = await fetch(`http://${proxy.host}/v2/`);
    expect(alive.status).toBe(401); // the real registry behind it, asking for auth
    await proxy.close();
    await expect(fetch(`http://${proxy.host}/v2/`)).rejects.toThrow();

    const cli = await up(c, proxy.host, tb.registryPassword);
    const r = await expectReady(c, cli);
    expect(r.cache.hit).toBe('miss');
    expect(r.cache.reason).toMatch(/REGISTRY_UNREACHABLE/);
    // The push-permission probe found the registry gone before the build.
    expect(r.push.status).toBe('failed');
    expect(r.push.reason).toMatch(/REGISTRY_UNREACHABLE/);
    expect(r.push.ref).toBe(c.refs.at(-1));
  });

  it.each(builders)('wrong password: cache miss REGISTRY_AUTH_FAILED, push not made, still ready ($builder builder)', async (node) => {
    const c = await scenario('badpw', node);
    const wrong = `wrong-${tb.registryPassword.slice(0, 6)}-${c.run}`;
    const cli = await up(c, tb.registry, wrong);
    const r = await expectReady(c, cli);
    expect(r.cache.hit).toBe('miss');
    expect(r.cache.reason).toMatch(/REGISTRY_AUTH_FAILED/);
    expect(r.push.status).toBe('failed');
    expect(r.push.reason).toMatch(/REGISTRY_AUTH_FAILED/);
    // The refused password is still a secret.
    expect(cli.stdout).not.toContain(wrong);
    expect(cli.stderr).not.toContain(wrong);
  });

  it.each(builders)(
    'push denied: read-only registry, right credentials → miss, push failed REGISTRY_PUSH_DENIED ($builder builder)',
    async (node) => {
      const c = await scenario('ro', node);
      const cli = await up(c, tb.readonlyRegistry, tb.registryPassword);
      const r = await expectReady(c, cli);
      // The credentials are good: the pull reached the registry and found nothing.
      expect(r.cache.hit).toBe('miss');
      expect(r.cache.reason).toMatch(/CACHE_IMAGE_MISSING/);
      expect(r.cache.reason).not.toMatch(/AUTH_FAILED|UNREACHABLE/);
      expect(r.push.status).toBe('failed');
      expect(r.push.reason).toMatch(/REGISTRY_PUSH_DENIED/);
      expect(r.push.ref).toBe(c.refs.at(-1));
    },
  );

  it('push slower than --push-timeout: push timeout, ready reported before it, CLI exits promptly', async () => {
    const c = await scenario('slowpush');
    const rate = 200_000; // bytes/s: the 12 MB layer alone needs a minute
    const proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: rate, maxLifetimeMs: 280_000 });
    proxies.push(proxy);

    const cli = await up(c, proxy.host, tb.registryPassword, ['--push-timeout', '3']);
    const r = await expectReady(c, cli);
    expect(r.cache.hit).toBe('miss');
    expect(r.cache.reason).toMatch(/CACHE_IMAGE_MISSING/);
    expect(r.push.status).toBe('timeout');
    expect(r.push.reason).toMatch(/3 s/);
    expect(r.push.ref).toBe(c.refs.at(-1));
    // The push really ran into the timeout (it was cut, not finished, not refused).
    expect(r.push.ms).toBeGreaterThanOrEqual(2900);
    expect(r.push.ms).toBeLessThan(10_000);
    expect(proxy.bytesUp()).toBeGreaterThan(rate / 2); // layer bytes did go through the proxy
    expect(proxy.bytesUp()).toBeLessThan(12_000_000);

    // timings.ready ends before the push starts: ready + push fits in the wall time.
    const ready = r.timings.ready!;
    expect(ready + r.push.ms!).toBeLessThanOrEqual(cli.wallMs + 250);
    // ...and the process ended soon after the push was cut off (no hang).
    expect(cli.wallMs - (ready + r.push.ms!)).toBeLessThan(5_000);
    const types = await eventTypes(c);
    expect(types.indexOf('outcome')).toBeGreaterThan(-1);
    expect(types.indexOf('push')).toBeGreaterThan(types.indexOf('outcome'));

    console.log(
      `push-timeout case: wall ${cli.wallMs} ms, ready ${ready} ms, push ${r.push.ms} ms (${r.push.status}), ` +
        `up ${r.timings.up} ms, ${proxy.bytesUp()} bytes through the proxy`,
    );
  });

  // BuildKit only: the classic builder reads the cache from the local image
  // the agent pulled (a failed pull is the miss above); BuildKit reads the
  // registry itself during the build, after the agent has read the moving
  // image's labels and decided to pass --cache-from.
  const bk = crossNodePairs(nodes).find((p) => p.builder === 'buildkit')!;

  /** A cache pushed from node 2 through an engine gate (open), and node 3, which never saw the repository, to start on. */
  async function cachedBehindGate(prefix: string) {
    const c = await scenario(prefix, bk.build);
    const gate: EngineGateProxy = await startEngineGateProxy(tb.registry);
    proxies.push(gate);
    const cold = await up(c, gate.host, tb.registryPassword);
    const first = parseResult(cold);
    expect(cold.code, cold.stderr).toBe(0);
    expect(first.push.status, JSON.stringify(first.push)).toBe('pushed');
    expect(first.cache.stepsTotal).toBeGreaterThan(0);
    // BuildKit's own cache keys a RUN by the files before it, not by the
    // run's LABEL: another case's build of the same fixture would serve it.
    await forgetRun(bk.start, { runId: c.run });
    const on = { id: `${c.run}-n3`, node: bk.start, env: await testEnv(tb.baseImage, bk.start.env) };
    c.more.push({ id: on.id, node: on.node });
    return { c, gate, first, on };
  }

  /** The start on node 3 through the closed gate: the engine went to the registry and was turned away; ready all the same, built by BuildKit. */
  async function readyWithoutTheEngine(c: Case, gate: EngineGateProxy, on: { id: string; node: TestNode; env: Record<string, string> }) {
    // The engine cannot push either: --push-timeout keeps its retries short.
    const cli = await up(c, gate.host, tb.registryPassword, ['--push-timeout', '2'], on);
    const r = parseResult(cli);
    const events = await readFile(join(on.env.WARMSTART_STATE_DIR!, 'workspaces', on.id, 'events.ndjson'), 'utf8');
    expect(gate.refused().length, JSON.stringify(gate.agents())).toBeGreaterThan(0);
    expect(cli.code, cli.stderr).toBe(0);
    expect(r.outcome).toBe('ready');
    expect(r.profile).toBe('devcontainer');
    expect(r.error).toBeNull();
    expect(await containersWithLabel(`warmstart.workspace=${on.id}`, on.node.dockerHost)).toEqual([r.containerId!.slice(0, 12)]);
    expect(events).toMatch(/Run: \S*docker buildx build /);
    return { r, events };
  }

  it.each(['down', 'unauthorized'] as const)(
    'registry %s to the engine after the agent read the moving labels: a BuildKit build on another node still ends ready, without claiming the layers',
    async (how) => {
      const { c, gate, first, on } = await cachedBehindGate(`gate${how === 'down' ? 'd' : 'u'}`);
      // Another exact key, the same layers.
      await missExactTag(c.repo);
      gate.closeToEngines(how);
      const { r } = await readyWithoutTheEngine(c, gate, on);
      // Nothing came from the cache, and the result says so, with the reason.
      expect(r.cache.stepsTotal).toBe(first.cache.stepsTotal);
      expect(r.cache.stepsCached).toBe(0);
      expect(r.cache, JSON.stringify(r.cache)).toMatchObject({ ref: c.refs.at(-1), hit: 'miss' });
      expect(r.cache.reason).toBeTruthy();
      expect(r.push.status).not.toBe('pushed');
      expect(r.push.reason).toBeTruthy();
    },
  );

  // The moving image is taken as the exact image from its labels, before its
  // pull has ended (cache-phase.ts movingAsExact), and `up` starts at once: a
  // pull that then fails is cache trouble, and the workspace is built instead.
  it('the engine turned away after the agent chose the moving image as the exact image: built without it, ready, a miss with the reason', async () => {
    // The same key on node 3: the moving image is labelled for it.
    const { c, gate, first, on } = await cachedBehindGate('gatex');
    // The engine's requests hang 3 s and are then cut: long enough for the agent to decide.
    gate.closeToEngines('down', 3000);
    const { r, events } = await readyWithoutTheEngine(c, gate, on);
    expect(events).toContain('the moving image is the exact image for this key');
    expect(events).toContain('the exact image could not be pulled');
    expect(r.cache, JSON.stringify(r.cache)).toMatchObject({ ref: c.refs.at(-1), hit: 'miss', stepsCached: 0, stepsTotal: first.cache.stepsTotal });
    expect(r.cache.reason).toBeTruthy();
  });
});
