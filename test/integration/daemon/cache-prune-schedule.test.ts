import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI, testEnv } from '../../support/cli.js';
import { startAgent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';

/**
 * `WARMSTART_CACHE_PRUNE_INTERVAL` in `warmstart serve`: refused before
 * anything listens when there is nothing it could prune; otherwise the
 * daemon runs with the timer and stops cleanly on SIGTERM. (What a run
 * removes: test/unit/cache/prune-schedule.test.ts.)
 */
const tb = loadTestbed();

async function serveRefusal(extra: Record<string, string>): Promise<{ code: number | undefined; stderr: string }> {
  const env = await testEnv(tb.baseImage, { WARMSTART_API_TOKEN_FILE: '/dev/null', WARMSTART_LISTEN: '127.0.0.1:0', ...extra });
  const r = await execa(process.execPath, [CLI, 'serve'], { env, extendEnv: true, reject: false, timeout: 30_000, stdin: 'ignore' });
  return { code: r.exitCode, stderr: String(r.stderr) };
}

describe('scheduled cache pruning in the daemon', () => {
  it('refuses to start without a cache registry, with ghcr.io, or with a bad interval', async () => {
    const none = await serveRefusal({ WARMSTART_CACHE_PRUNE_INTERVAL: '24' });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/INVALID_ARGUMENT: WARMSTART_CACHE_PRUNE_INTERVAL needs a cache registry/);
    const ghcr = await serveRefusal({ WARMSTART_CACHE_PRUNE_INTERVAL: '24', WARMSTART_CACHE_REGISTRY: 'ghcr.io/acme' });
    expect(ghcr.code).toBe(2);
    expect(ghcr.stderr).toMatch(/REGISTRY_UNSUPPORTED: .*packages API/);
    const bad = await serveRefusal({ WARMSTART_CACHE_PRUNE_INTERVAL: 'weekly', WARMSTART_CACHE_REGISTRY: tb.openRegistry });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/WARMSTART_CACHE_PRUNE_INTERVAL must be/);
  });

  it('runs with the timer set and stops on SIGTERM', async () => {
    const agent = await startAgent(
      await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test`, WARMSTART_CACHE_PRUNE_INTERVAL: '24' }),
    );
    const health = await fetch(`${agent.url}/health`);
    expect(health.status).toBe(200);
    expect(await agent.term()).toBe(0);
  });
});
