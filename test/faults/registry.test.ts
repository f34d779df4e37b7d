import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageExists, wipeImages } from '../support/docker.js';
import {
  cleanUpScenarios,
  describeView,
  eventsOf,
  purge,
  scenario,
  settled,
  startSuiteAgent,
  submit,
  type Scenario,
  type View,
} from '../support/fault-jobs.js';
import { startFaultRegistry, type FaultRegistry } from '../support/fault-registry.js';
import { faultRow } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import { waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { until } from '../support/wait.js';
import { expectedCacheRef } from '../support/cache-ref.js';

/**
 * Registry faults against a running agent: the registry stopped before the
 * pull, stopped in the middle of a push, refusing the push, answering 5xx for
 * manifests, too slow for the push timeout. Cache trouble never fails a
 * workspace: every job ends ready with the repository's own dev container,
 * the cause in cache.reason / push.reason, and the agent keeps serving.
 */
const tb = loadTestbed();
const scenarios: Scenario[] = [];
const proxies: { close(): Promise<void> }[] = [];
const agents: Agent[] = [];
let agent: Agent;

/** The `small` fixture (a 12 MB layer: a push of it takes a while through a throttle). */
async function smallScenario(prefix: string): Promise<Scenario> {
  const s = await scenario(tb, prefix, 'small', { name: 'small' });
  scenarios.push(s);
  return s;
}

function refOf(s: Scenario, host: string): string {
  const ref = expectedCacheRef(`${host}/${s.namespace}`, s.repo);
  s.refs.push(ref);
  return ref;
}

/** A job for the scenario's repository with the registry at `host` and the testbed's credentials. */
async function job(a: Agent, s: Scenario, id: string, host: string): Promise<void> {
  s.ids.push(id);
  await submit(a, {
    id,
    repository: s.repo,
    cache: { registry: `${host}/${s.namespace}`, username: tb.registryUser, password: tb.registryPassword },
  });
}

/** What every row's workspace shares: ready with the repository's own dev container, nothing pending. */
function expectReadyOwnContainer(v: View, ref: string): void {
  expect(v.status, JSON.stringify(v)).toBe('ready');
  expect(v.profile).toBe('devcontainer');
  expect(v.error).toBeNull();
  expect(v.containerId).toMatch(/^[0-9a-f]{64}$/);
  expect(v.cache?.ref).toBe(ref);
  expect(v.push?.ref).toBe(ref);
}

/**
 * A cache image in the registry behind a fault registry, then a node that
 * has none of its images: whatever the next job gets, it gets from the
 * registry. Shared by the rows that need a cache worth pulling.
 */
let seeding: Promise<{ s: Scenario; reg: FaultRegistry; ref: string; seed: View }> | null = null;
function seeded(): Promise<{ s: Scenario; reg: FaultRegistry; ref: string; seed: View }> {
  seeding ??= (async () => {
    const s = await smallScenario('fseed');
    const reg = await startFaultRegistry({ upstream: tb.registry, maxLifetimeMs: 280_000 });
    proxies.push(reg);
    const ref = refOf(s, reg.host);
    const id = `${s.run}-seed`;
    await job(agent, s, id, reg.host);
    const seed = await settled(agent, id);
    expectReadyOwnContainer(seed, ref);
    expect(seed.push?.status, JSON.stringify(seed.push)).toBe('pushed');
    await purge(agent, id);
    await wipeImages(s.run, s.refs);
    expect(await imageExists(ref)).toBe(false);
    return { s, reg, ref, seed };
  })();
  return seeding;
}

/** The node forgets the scenario's workspaces and images again (the registry keeps the cache). */
async function forget(s: Scenario, ids: string[]): Promise<void> {
  for (const id of ids) await purge(agent, id);
  await wipeImages(s.run, s.refs);
}

beforeAll(async () => {
  agent = await startSuiteAgent(tb);
  agents.push(agent);
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const a of agents) await a.term();
  await cleanUpScenarios(scenarios);
});

describe('fault matrix: the cache registry', () => {
  it('registry stopped before the pull', async () => {
    await faultRow(
      {
        fault: 'registry stopped before the pull (cache seeded)',
        expected: 'ready with own container, cache miss REGISTRY_UNREACHABLE, push failed with reason; hit once back',
      },
      async () => {
        const { s, reg, ref } = await seeded();
        await reg.stop();
        await expect(fetch(`http://${reg.host}/v2/`)).rejects.toThrow();
        const id = `${s.run}-down`;
        try {
          await job(agent, s, id, reg.host);
          const v = await settled(agent, id);
          expectReadyOwnContainer(v, ref);
          expect(v.cache?.hit).toBe('miss');
          expect(v.cache?.reason).toMatch(/REGISTRY_UNREACHABLE/);
          expect(v.push?.status).toBe('failed');
          expect(v.push?.reason).toMatch(/REGISTRY_UNREACHABLE/);
          // The build ran without the cache image: nothing came from the registry.
          expect(await imageExists(ref)).toBe(false);
          const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);

          // Back at the same address, the cache is found again.
          await reg.start();
          const again = `${s.run}-back`;
          await job(agent, s, again, reg.host);
          const b = await settled(agent, again);
          expect(b.status).toBe('ready');
          expect(['exact', 'layers']).toContain(b.cache?.hit);
          await forget(s, [id, again]);
          return `${describeView(v)}; back: ${b.status}, cache ${b.cache?.hit}; ${invariants}`;
        } finally {
          await reg.start();
        }
      },
    );
  });

  it('5xx on manifests', async () => {
    await faultRow(
      {
        fault: 'registry answers 503 to GET/HEAD manifests (cache seeded)',
        expected: 'ready with own container, cache miss with reason, exact lookup noted',
      },
      async () => {
        const { s, reg, ref } = await seeded();
        reg.setRules([{ methods: ['GET', 'HEAD'], path: /^\/v2\/.+\/manifests\/[^/]+$/, status: 503 }]);
        const from = reg.requests.length;
        const id = `${s.run}-5xx`;
        try {
          await job(agent, s, id, reg.host);
          const v = await settled(agent, id);
          expectReadyOwnContainer(v, ref);
          expect(v.cache?.hit).toBe('miss');
          // The registry's answer is in the reason: an operator can tell a 503 from a refusal.
          expect(v.cache?.reason).toMatch(/REGISTRY_ERROR.*503/);
          expect(v.cache?.reason).toMatch(/503/);
          const seen = reg.requests.slice(from);
          // The pull and the exact lookup did ask for manifests, and got the 503.
          expect(seen.filter((r) => r.faulted && r.method === 'GET').length).toBeGreaterThan(0);
          expect(seen.filter((r) => r.faulted && r.method === 'HEAD').length).toBeGreaterThan(0);
          const events = await eventsOf(agent, id);
          expect(events.some((e) => e.type === 'note' && /exact lookup failed/.test(e.text ?? ''))).toBe(true);
          // Only manifest reads fail: the push (blob uploads, a manifest PUT) still goes through.
          expect(v.push?.status, JSON.stringify(v.push)).toBe('pushed');
          const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
          await forget(s, [id]);
          return `${describeView(v)}; cache.reason "${v.cache?.reason}"; ${seen.filter((r) => r.faulted).length} manifest requests answered 503; ${invariants}`;
        } finally {
          reg.setRules([]);
        }
      },
    );
  });

  it('registry stopped in the middle of a push', async () => {
    await faultRow(
      {
        fault: 'registry stopped in the middle of a push',
        expected: 'ready; push failed with reason; agent keeps serving; next job for the repo ready and pushed',
      },
      async () => {
        const s = await smallScenario('fmidpush');
        const proxy: ThrottleProxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: 100_000, maxLifetimeMs: 280_000 });
        proxies.push(proxy);
        const ref = refOf(s, proxy.host);
        const id = `${s.run}-ws`;
        await job(agent, s, id, proxy.host);
        const ready = (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'])) as unknown as View;
        expect(ready.status).toBe('ready');
        expect(ready.push?.status).toBe('pending');
        // Layer bytes are on their way: then the registry goes.
        const before = proxy.bytesUp();
        await until('push bytes through the proxy', () => proxy.bytesUp() > before + 64_000, 60_000);
        await proxy.close();
        const cut = proxy.bytesUp();
        const v = await settled(agent, id);
        expectReadyOwnContainer(v, ref);
        expect(v.push?.status).toBe('failed');
        expect(v.push?.reason).toMatch(/REGISTRY_UNREACHABLE/);
        expect(cut).toBeLessThan(12_000_000);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);

        // The registry comes back at the same address: the next job of the repository works and its push goes through.
        const back = await startFaultRegistry({ upstream: tb.registry, port: proxy.port, maxLifetimeMs: 280_000 });
        proxies.push(back);
        const next = `${s.run}-next`;
        await job(agent, s, next, back.host);
        const n = await settled(agent, next);
        expectReadyOwnContainer(n, ref);
        expect(n.push?.status, JSON.stringify(n.push)).toBe('pushed');
        const after = await agentInvariants(agent, [id, next], [`warmstart-ws-${id}`, `warmstart-ws-${next}`]);
        // (the engine retries the upload a few times with back-off before it gives up)
        return `${describeView(v)}, cut after ${cut} bytes; next job: ${describeView(n)}; ${invariants}; then ${after}`;
      },
    );
  });

  it('registry refusing the push with 401', async () => {
    await faultRow(
      {
        fault: 'registry answers 401 to blob uploads and manifest PUTs (probe passes)',
        expected: 'ready with own container; push failed REGISTRY_AUTH_FAILED/REGISTRY_PUSH_DENIED',
      },
      async () => {
        const s = await smallScenario('fdenied');
        const reg = await startFaultRegistry({
          upstream: tb.registry,
          maxLifetimeMs: 280_000,
          rules: [
            {
              methods: ['PATCH', 'PUT'],
              path: /^\/v2\/.+\/blobs\/uploads\//,
              status: 401,
              headers: { 'WWW-Authenticate': 'Basic realm="registry"' },
            },
            { methods: ['PUT'], path: /^\/v2\/.+\/manifests\//, status: 401, headers: { 'WWW-Authenticate': 'Basic realm="registry"' } },
          ],
        });
        proxies.push(reg);
        const ref = refOf(s, reg.host);
        const id = `${s.run}-ws`;
        await job(agent, s, id, reg.host);
        const v = await settled(agent, id);
        expectReadyOwnContainer(v, ref);
        expect(v.cache?.hit).toBe('miss');
        expect(v.push?.status).toBe('failed');
        expect(v.push?.reason).toMatch(/REGISTRY_AUTH_FAILED|REGISTRY_PUSH_DENIED/);
        // The push itself was refused (the probe's POST and DELETE went through).
        expect(v.push?.reason).not.toMatch(/probe/);
        const faulted = reg.requests.filter((r) => r.faulted);
        expect(faulted.length).toBeGreaterThan(0);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}; ${faulted.length} upload requests answered 401; ${invariants}`;
      },
    );
  });

  it('registry too slow for the push timeout', async () => {
    await faultRow(
      {
        fault: 'registry too slow: push longer than WARMSTART_PUSH_TIMEOUT_SECONDS=3',
        expected: 'ready with own container; push timeout with reason',
      },
      async () => {
        const slow = await startSuiteAgent(tb, { WARMSTART_PUSH_TIMEOUT_SECONDS: '3' });
        agents.push(slow);
        const s = await smallScenario('fslow');
        const proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: 200_000, maxLifetimeMs: 280_000 });
        proxies.push(proxy);
        const ref = refOf(s, proxy.host);
        const id = `${s.run}-ws`;
        await job(slow, s, id, proxy.host);
        const v = await settled(slow, id);
        expectReadyOwnContainer(v, ref);
        expect(v.push?.status).toBe('timeout');
        expect(v.push?.reason).toMatch(/3 s/);
        expect(v.push?.ms).toBeGreaterThanOrEqual(2900);
        const up = proxy.bytesUp();
        expect(up).toBeGreaterThan(100_000);
        expect(up).toBeLessThan(12_000_000);
        await proxy.close();
        const invariants = await agentInvariants(slow, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}, ${up} bytes sent by then; ${invariants}`;
      },
    );
  });
});
