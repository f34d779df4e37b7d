import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import type { PrepareRequest } from '../../../agent/src/workspace/request.js';

// `warmstart up --config-name= ...` used to run with the default config (and
// `--cache-registry=` without a cache, `--cache-ref=` with the derived ref):
// an empty value given on purpose is a mistake to report, not "none".
const config = configFromEnv({});
const base: PrepareRequest = { workspaceId: 'ws-1', repository: 'octo/hello' };

function codeOf(req: PrepareRequest): string | null {
  try {
    planJob(req, config);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    return (err as WarmstartError).code;
  }
}

describe('planJob: empty values are refused, absent ones are not', () => {
  it.each([
    ['config name', { configName: '' }, 'INVALID_CONFIG_NAME'],
    ['cache registry', { cache: { registry: '' } }, 'INVALID_REGISTRY'],
    ['cache ref', { cache: { registry: '127.0.0.1:5000', ref: '' } }, 'INVALID_CACHE_REF'],
  ] as const)('an empty %s → %s', (_what, extra, code) => {
    expect(codeOf({ ...base, ...extra })).toBe(code);
  });

  it('null or absent means none', () => {
    expect(codeOf({ ...base, configName: null, cache: { registry: null, ref: null } })).toBeNull();
    expect(planJob(base, config).configName).toBeNull();
    expect(planJob(base, config).cacheRef).toBeNull();
  });
});
