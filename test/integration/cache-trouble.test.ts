import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { WorkspaceResult } from '../../shared/src/workspace-result.js';
import { parseResult, runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp, containersWithLabel } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { expectedCacheRef } from '../support/cache-ref.js';

/**
 * Registry trouble never fails a workspace (DESIGN.md steps 6, 10, 11): with
 * the registry stopped, the password wrong, pushes denied, or a push slower
 * than its timeout, `up` still ends ready with the repo's own dev container,
 * and the cause is in cache.reason / push.reason.
 */
const tb = loadTestbed();

interface Case {
  run: string;
  id: string;
  repo: string;
  env: Record<string, string>;
  refs: string[];
}

const cases: Case[] = [];
const proxies: ThrottleProxy[] = [];

/** One scenario's own run id, workspace, repository (the `small` fixture) and state dir. */
async function scenario(prefix: string): Promise<Case> {
  const run = runId(prefix);
  const c: Case = {
    run,
    id: `${run}-ws`,
    repo: await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'small' }),
    env: await testEnv(tb.baseImage),
    refs: [],
  };
  cases.push(c);
  return c;
}

/** `up --json` against `registry` (host:port) with the given password on stdin. */
function up(c: Case, registry: string, password: string, extra: string[] = []): Promise<CliRun> {
  const namespace = `warmstart-test/${c.run}`;
  c.refs.push(expectedCacheRef(`${registry}/${namespace}`, c.repo));
  return runCli(
    [
      'up', c.repo, '--workspace-id', c.id,
      '--cache-registry', `${registry}/${namespace}`,
      '--registry-username', tb.registryUser, '--registry-password-stdin',
      ...extra, '--json',
    ],
    { env: c.env, input: `${password}\n` },
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
  expect(await containersWithLabel(`warmstart.workspace=${c.id}`)).toEqual([r.containerId!.slice(0, 12)]);
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
  return text.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
}

afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const c of cases) {
    await cleanUp({ runId: c.run, workspaceIds: [c.id], refs: c.refs });
    await rm(c.env.WARMSTART_STATE_DIR!, { recursive: true, force: true });
    await rm(join(c.repo, '..', '..'), { recursive: true, force: true });
  }
});

describe('cache trouble never fails a workspace (real engine, registry, devcontainers CLI)', () => {
  it('registry stopped: cache miss REGISTRY_UNREACHABLE, push failed, still ready', async () => {
    const c = await scenario('regdown');
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

  it('wrong password: cache miss REGISTRY_AUTH_FAILED, push not made, still ready', async () => {
    const c = await scenario('badpw');
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

  it('push denied: read-only registry, right credentials → miss, push failed REGISTRY_PUSH_DENIED', async () => {
    const c = await scenario('ro');
    const cli = await up(c, tb.readonlyRegistry, tb.registryPassword);
    const r = await expectReady(c, cli);
    // The credentials are good: the pull reached the registry and found nothing.
    expect(r.cache.hit).toBe('miss');
    expect(r.cache.reason).toMatch(/CACHE_IMAGE_MISSING/);
    expect(r.cache.reason).not.toMatch(/AUTH_FAILED|UNREACHABLE/);
    expect(r.push.status).toBe('failed');
    expect(r.push.reason).toMatch(/REGISTRY_PUSH_DENIED/);
    expect(r.push.ref).toBe(c.refs.at(-1));
  });

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
});
