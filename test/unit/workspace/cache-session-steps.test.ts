/**
 * The cache session's steps (workspace/cache-phase.ts) are begun by the job
 * one by one: each runs once however often it is asked for or read, one
 * nobody began starts when first read, and without a moving pull none is
 * made. A registry and an engine that count what reaches them.
 */
import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import type { WorkspaceEvent } from '../../../agent/src/events/events.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import type { RegistryClient } from '../../../agent/src/registry/registry-client.js';
import { staticCredentials } from '../../../agent/src/registry/credentials.js';
import { CacheSession } from '../../../agent/src/workspace/cache-phase.js';
import { planJob } from '../../../agent/src/workspace/plan.js';

const config = configFromEnv({ WARMSTART_STATE_DIR: '/nonexistent', WARMSTART_CACHE_REGISTRY: 'registry.test:5000/ns' });
const plan = planJob({ workspaceId: 'w1', repository: 'https://github.com/acme/app' }, config);

function setup(pullMoving = true) {
  const calls: string[] = [];
  const events: WorkspaceEvent[] = [];
  const engine = {
    imageRepoDigests: async () => [],
    pullImage: async (ref: string) => {
      calls.push(`pull ${ref}`);
      throw new Error('manifest unknown');
    },
  } as unknown as DockerEngine;
  const registry = {
    probePush: async () => void calls.push('probe'),
  } as unknown as RegistryClient;
  const oci = { fetchManifest: async () => Promise.reject(new Error('no manifest')) };
  const creds = staticCredentials({ registry: 'registry.test:5000', username: 'u', password: 'p' }, 'static');
  const counted = { get: async (host: string) => (calls.push('login'), creds.get(host)) };
  const rec = new PhaseRecorder('w1', { emit: (e) => void events.push(e) });
  const session = CacheSession.open({ engine, registry, credentialSources: [counted], config: {}, oci } as never, plan, rec, { pullMoving })!;
  return { session, calls, events };
}

describe('CacheSession steps', () => {
  it('each runs once, whether begun, asked again or read', async () => {
    const { session, calls, events } = setup();
    expect(calls).toEqual([]); // open begins nothing
    void session.login();
    void session.login();
    void session.pullMoving();
    void session.probePush();
    expect(await session.credentials).toMatchObject({ username: 'u', source: 'static' });
    expect(await session.pushBlocked).toBeNull();
    expect((await session.moving).available).toBe(false);
    await session.movingConfig; // never begun: starts now, once
    expect(calls.filter((c) => c === 'login')).toHaveLength(1);
    expect(calls.filter((c) => c === 'probe')).toHaveLength(1);
    expect(calls.filter((c) => c.startsWith('pull'))).toHaveLength(1);
    const phases = events.filter((e) => e.type === 'phase-start').map((e) => (e.type === 'phase-start' ? e.phase : ''));
    expect(phases.sort()).toEqual(['credentials', 'moving-labels', 'pull']);
  });

  it("without a moving pull (a prebuild's check), nothing is pulled or read", async () => {
    const { session, calls } = setup(false);
    session.beginAll();
    expect(await session.moving).toEqual({ available: false, reason: 'not pulled' });
    expect(await session.movingConfig).toBeNull();
    expect(calls.some((c) => c.startsWith('pull'))).toBe(false);
  });
});
