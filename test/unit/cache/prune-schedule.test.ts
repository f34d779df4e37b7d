import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { startPruneSchedule } from '../../../agent/src/cache/prune-schedule.js';
import { pruneScheduleFromEnv } from '../../../agent/src/config/prune-config.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { putTinyManifest, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const api = createOciApi();
const ns = uniqueNamespace('prunesched');
const repo = `${tb.openRegistry}/${ns}/acme/app`;

afterAll(async () => {
  for (const tag of await api.listTags(repo, null).catch(() => [])) {
    const m = await api.getManifest(repo, tag, null).catch(() => null);
    if (m) await api.deleteManifest(repo, m.digest, null).catch(() => false);
  }
});

describe('prune schedule settings', () => {
  it('is off without an interval, defaults keep 5 and 30 days, refuses nonsense', () => {
    expect(pruneScheduleFromEnv({})).toBeNull();
    expect(pruneScheduleFromEnv({ WARMSTART_CACHE_PRUNE_INTERVAL: '24' })).toEqual({ intervalMs: 86_400_000, keep: 5, olderThanMs: 30 * 86_400_000 });
    expect(
      pruneScheduleFromEnv({ WARMSTART_CACHE_PRUNE_INTERVAL: '6', WARMSTART_CACHE_PRUNE_KEEP: '2', WARMSTART_CACHE_PRUNE_OLDER_THAN: '0' }),
    ).toEqual({
      intervalMs: 6 * 3_600_000,
      keep: 2,
      olderThanMs: null,
    });
    for (const env of [
      { WARMSTART_CACHE_PRUNE_INTERVAL: 'daily' },
      { WARMSTART_CACHE_PRUNE_INTERVAL: '0.0001' },
      { WARMSTART_CACHE_PRUNE_INTERVAL: '1', WARMSTART_CACHE_PRUNE_KEEP: '1.5' },
    ]) {
      let caught: unknown;
      try {
        pruneScheduleFromEnv(env);
      } catch (err) {
        caught = err;
      }
      expect(isWarmstartError(caught, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('prune schedule', () => {
  it('runs on its timer, logs and counts what it removed, and stops', async () => {
    const now = Date.now();
    for (let i = 0; i < 3; i++) await putTinyManifest(api, repo, `exact-${String(i).padStart(40, '0')}`, new Date(now - (i + 1) * 3_600_000), null);
    await putTinyManifest(api, repo, 'devcontainer-cache', new Date(now), null);
    const logged: { msg: string; obj: Record<string, unknown> }[] = [];
    const logger = {
      info: (obj: object, msg: string) => logged.push({ msg, obj: obj as Record<string, unknown> }),
      warn: (obj: object, msg: string) => logged.push({ msg, obj: obj as Record<string, unknown> }),
    };
    const metrics = new Registry();
    const schedule = startPruneSchedule({
      config: { intervalMs: 60_000, keep: 1, olderThanMs: null },
      registry: `${tb.openRegistry}/${ns}`,
      credentials: async () => null,
      store: { list: async () => [] },
      logger,
      metrics,
      firstRunMs: 10,
    });
    const deadline = Date.now() + 20_000;
    while (schedule.runs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await schedule.stop();
    expect(schedule.runs).toHaveLength(1);
    const entry = logged.find((l) => l.msg === 'cache prune');
    expect([...(entry?.obj.removed as string[])].sort()).toEqual([`${repo}:exact-${'0'.repeat(39)}1`, `${repo}:exact-${'0'.repeat(39)}2`]);
    expect(await metrics.getSingleMetricAsString('warmstart_cache_pruned_total')).toMatch(/result="deleted"} 2/);
    expect((await api.listTags(repo, null)).sort()).toEqual(['devcontainer-cache', `exact-${'0'.repeat(40)}`]);
  }, 30_000);

  it('refuses ghcr.io at start', () => {
    expect(() =>
      startPruneSchedule({
        config: { intervalMs: 60_000, keep: 1, olderThanMs: null },
        registry: 'ghcr.io/acme',
        credentials: async () => null,
        store: { list: async () => [] },
        logger: { info() {}, warn() {} },
      }),
    ).toThrow(/packages API/);
  });
});
