import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { PromMetrics, reasonBucket } from '../../../agent/src/metrics/prom-metrics.js';

describe('PromMetrics', () => {
  it('renders every warmstart metric in the Prometheus text format', async () => {
    const m = new PromMetrics({ processMetrics: false });
    m.jobStatus('ready');
    m.jobStatus('ready');
    m.jobStatus('failed');
    m.phase('clone', 1500);
    m.cache('layers', null);
    m.cache('miss', 'REGISTRY_AUTH_FAILED: registry refused the credentials');
    m.push('pushed');
    m.push('failed', 'REGISTRY_AUTH_FAILED: credentials unavailable: GITHUB_APP_AUTH_FAILED: refused');
    m.push('timeout', 'push did not finish within 2 s');
    m.push('skipped', 'no registry credentials: pull only');
    m.buildSteps(3, 5);
    m.buildSteps(1, 2);
    m.setGauges({ running: 2, queued: 1, pushing: 1 });
    m.eventLines('cut', 2);
    m.eventLines('dropped-history', 450);
    m.eventLines('dropped-history', 450);
    m.eventLines('dropped-file', 0);

    const { contentType, body } = await m.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).toContain('warmstart_jobs_total{status="ready"} 2');
    expect(body).toContain('warmstart_jobs_total{status="failed"} 1');
    expect(body).toContain('warmstart_phase_duration_seconds_sum{phase="clone"} 1.5');
    expect(body).toContain('warmstart_phase_duration_seconds_bucket{le="2.5",phase="clone"} 1');
    expect(body).toContain('warmstart_cache_total{hit="layers",reason="none"} 1');
    expect(body).toContain('warmstart_cache_total{hit="miss",reason="REGISTRY_AUTH_FAILED"} 1');
    expect(body).toContain('warmstart_pushes_total{status="pushed"} 1');
    expect(body).toContain('warmstart_pushes_total{status="failed"} 1');
    expect(body).toContain('warmstart_push_failures_total{reason="REGISTRY_AUTH_FAILED"} 1');
    expect(body).toContain('warmstart_push_failures_total{reason="other"} 1');
    expect(body).not.toMatch(/warmstart_push_failures_total\{reason="none"\}/);
    expect(body).toContain('warmstart_build_steps_cached_total 4');
    expect(body).toContain('warmstart_build_steps_total 7');
    expect(body).toContain('warmstart_jobs_running 2');
    expect(body).toContain('warmstart_jobs_queued 1');
    expect(body).toContain('warmstart_pushes_running 1');
    expect(body).toContain('warmstart_event_lines_total{action="cut"} 2');
    expect(body).toContain('warmstart_event_lines_total{action="dropped-history"} 900');
    expect(body).not.toContain('warmstart_event_lines_total{action="dropped-file"}');
    expect(body).not.toContain('process_cpu');
  });

  it('keeps its metrics off the global registry, so two instances never clash', async () => {
    const a = new PromMetrics();
    const b = new PromMetrics();
    a.jobStatus('ready');
    expect(await globalRegistry.metrics()).not.toContain('warmstart_');
    expect((await b.render()).body).not.toContain('warmstart_jobs_total{status="ready"}');
    expect((await a.render()).body).toContain('process_cpu_seconds_total');
  });

  it('ignores counts prom-client would throw on', async () => {
    const m = new PromMetrics({ processMetrics: false });
    expect(() => m.buildSteps(-1, Number.NaN)).not.toThrow();
    expect(() => m.phase('x', -5)).not.toThrow();
    expect((await m.render()).body).toContain('warmstart_build_steps_total 0');
  });
});

describe('reasonBucket', () => {
  it('keeps the error code, buckets prose as other, no reason as none', () => {
    expect(reasonBucket(null)).toBe('none');
    expect(reasonBucket('')).toBe('none');
    expect(reasonBucket('CACHE_IMAGE_MISSING: not found in ghcr.io/o/r')).toBe('CACHE_IMAGE_MISSING');
    expect(reasonBucket('REGISTRY_UNREACHABLE')).toBe('REGISTRY_UNREACHABLE');
    expect(reasonBucket('image-based config: cacheFrom does not apply')).toBe('other');
    expect(reasonBucket('lightweight workspace: nothing is built')).toBe('other');
  });
});
