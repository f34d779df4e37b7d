import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import { reconcile } from '../../../agent/src/jobs/reconcile.js';
import { WorkspaceStore, type WorkspaceRecord, type WorkspaceStatus } from '../../../agent/src/state/workspace-store.js';
import { WorkspaceLifecycle } from '../../../agent/src/workspace/lifecycle.js';
import { readyResult } from '../../support/results.js';

/**
 * Start-up reconcile (agent/src/jobs/reconcile.ts) records through the
 * lifecycle's transitions: `interrupt` for a job the dead agent left,
 * `recheck` for a ready workspace as Docker has it. The engine is a fake.
 */
const T = '2030-01-01T00:00:00.000Z';
let dir: string;
let store: WorkspaceStore;
let containers: { id: string; image: string; state: string; labels: Record<string, string> }[];
let removed: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-reconcile-'));
  store = new WorkspaceStore(join(dir, 'state'));
  containers = [];
  removed = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const engine = {
  findContainers: async (labels: Record<string, string>) =>
    containers.filter((c) => c.labels['warmstart.workspace'] === labels['warmstart.workspace']),
  removeContainer: async (id: string) => void removed.push(id),
} as unknown as DockerEngine;

async function seed(id: string, status: WorkspaceStatus, extra: Partial<WorkspaceRecord> = {}): Promise<void> {
  const result = status === 'ready' ? readyResult(id) : null;
  await store.save({
    id,
    repository: 'https://example.test/a.git',
    configName: null,
    lightweight: false,
    status,
    result,
    createdAt: T,
    updatedAt: T,
    ...extra,
  });
}

describe('reconcile through the lifecycle', () => {
  it('fails what was being prepared, flags a ready workspace without its container, fails a push that never settled; stamps from the lifecycle clock', async () => {
    await seed('q', 'queued');
    await seed('c', 'creating');
    await seed('gone', 'ready');
    await seed('alive', 'ready');
    await seed('pending', 'ready', { result: { ...readyResult('pending'), push: { status: 'pending', ref: 'r:t', reason: null, ms: null } } });
    containers = [
      { id: 'c-alive', image: 'i', state: 'running', labels: { 'warmstart.workspace': 'alive' } },
      { id: 'c-pending', image: 'i', state: 'running', labels: { 'warmstart.workspace': 'pending' } },
      { id: 'half', image: 'i', state: 'exited', labels: { 'warmstart.workspace': 'c' } },
    ];
    const later = '2030-01-02T00:00:00.000Z';
    const lifecycle = new WorkspaceLifecycle(store, { clock: () => new Date(later) });
    const report = await reconcile(store, engine, pino({ level: 'silent' }), lifecycle);
    expect(report.restarted.sort()).toEqual(['c', 'q']);
    expect(report.missing).toEqual(['gone']);
    expect(removed).toEqual(['half']);
    for (const id of ['q', 'c']) {
      expect(await store.load(id)).toMatchObject({ status: 'failed', error: { code: 'AGENT_RESTARTED' }, updatedAt: later });
    }
    expect(await store.load('gone')).toMatchObject({ status: 'ready', containerMissing: true, updatedAt: later });
    expect(await store.load('alive')).toMatchObject({ status: 'ready', updatedAt: T });
    expect(await store.load('pending')).toMatchObject({
      containerMissing: false,
      result: { push: { status: 'failed', reason: 'the agent restarted before the push finished' } },
      updatedAt: later,
    });
  });
});

describe('reconcile: copy helpers', () => {
  it('removes the never-started copy helpers older than ten minutes; a young one (a copy under way) and any other stay', async () => {
    const now = Date.parse('2030-01-01T12:00:00Z');
    const helpers = [
      { id: 'old-created', state: 'created', createdAt: now - 11 * 60_000 },
      { id: 'young-created', state: 'created', createdAt: now - 60_000 },
      { id: 'old-running', state: 'running', createdAt: now - 60 * 60_000 },
      { id: 'old-unknown-age', state: 'created' },
    ].map((h) => ({ image: 'warmstart/volume-filler:1', labels: { 'warmstart.helper': 'copy' }, ...h }));
    const asked: string[] = [];
    const withHelpers = {
      ...engine,
      findContainersWithLabel: async (key: string) => (asked.push(key), helpers),
    } as unknown as DockerEngine;
    await reconcile(store, withHelpers, pino({ level: 'silent' }), new WorkspaceLifecycle(store), () => now);
    expect(asked).toEqual(['warmstart.helper']);
    expect(removed).toEqual(['old-created']);
  });
});
