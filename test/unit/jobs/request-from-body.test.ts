import { describe, expect, it } from 'vitest';
import { CreateWorkspaceBody } from '../../../shared/src/api.js';
import { requestFromBody } from '../../../agent/src/jobs/request-from-body.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { planJob } from '../../../agent/src/workspace/plan.js';

const node = { allowLocalRepos: false, maxPushTimeoutMs: 600_000 };
const base = { id: 'w1', repository: 'https://github.com/acme/app' };

describe('an API body as a job request: the per-job cache and push controls', () => {
  it('noCache, noPush and pushTimeoutSeconds reach the plan and the controls the result reports', () => {
    const config = configFromEnv({ WARMSTART_STATE_DIR: '/nonexistent', WARMSTART_CACHE_REGISTRY: 'registry.example/ns' });
    const plain = planJob(requestFromBody(base, node), config);
    expect(plain.controls).toEqual({ noCache: false, noPush: false, pushTimeoutSeconds: 600 });
    expect(plain.cacheRef).not.toBeNull();
    expect(plain.pushOffReason).toBeNull();

    const off = planJob(requestFromBody({ ...base, noCache: true, cache: { registry: 'registry.example/other' } }, node), config);
    expect(off.cacheRef).toBeNull();
    expect(off.cacheOffReason).toBe('cache disabled for this job');
    expect(off.controls.noCache).toBe(true);

    const quiet = planJob(requestFromBody({ ...base, noPush: true, pushTimeoutSeconds: 2.5 }, node), config);
    expect(quiet.pushOffReason).toBe('push disabled for this job');
    expect(quiet.pushTimeoutMs).toBe(2500);
    expect(quiet.controls).toEqual({ noCache: false, noPush: true, pushTimeoutSeconds: 2.5 });
  });

  it("a push timeout longer than the node's limit is refused; the schema refuses one that is not a positive number", () => {
    expect(() => requestFromBody({ ...base, pushTimeoutSeconds: 600.5 }, node)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(requestFromBody({ ...base, pushTimeoutSeconds: 600 }, node).push).toEqual({ disabled: false, timeoutMs: 600_000 });
    for (const bad of [0, -1, '30', null, 100_000]) {
      expect(CreateWorkspaceBody.safeParse({ ...base, pushTimeoutSeconds: bad }).success, String(bad)).toBe(false);
    }
    for (const bad of ['yes', 1]) {
      expect(CreateWorkspaceBody.safeParse({ ...base, noCache: bad }).success, String(bad)).toBe(false);
      expect(CreateWorkspaceBody.safeParse({ ...base, noPush: bad }).success, String(bad)).toBe(false);
    }
  });
});
