import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import type { DiscoveredConfig } from '../../../agent/src/devcontainer/discover.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { configSkipReason, planPrebuild, prebuildId, pushSkipReason, type PrebuildRequest } from '../../../agent/src/workspace/prebuild-plan.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { validateWorkspaceId } from '../../../agent/src/workspace/validate.js';

const withRegistry = configFromEnv({ WARMSTART_CACHE_REGISTRY: '127.0.0.1:5000/ns' });
const noRegistry = configFromEnv({});

function codeOf(req: PrebuildRequest, config = withRegistry): string | null {
  try {
    planPrebuild(req, config, 'prebuild-0123456789ab');
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    expect((err as WarmstartError).isInputError).toBe(true);
    return (err as WarmstartError).code;
  }
}

function discovered(kind: DiscoveredConfig['kind']): DiscoveredConfig {
  return { path: '/r/.devcontainer/devcontainer.json', relativePath: '.devcontainer/devcontainer.json', text: '{}', config: {}, kind };
}

describe('planPrebuild: refused up front, before anything is created', () => {
  it.each([
    ['a repository that is not one', { repository: 'not a repo at all' }, 'INVALID_REPOSITORY'],
    ['a config name that leaves .devcontainer', { repository: 'octo/hello', configName: '../x' }, 'INVALID_CONFIG_NAME'],
    ['an empty config name', { repository: 'octo/hello', configName: '' }, 'INVALID_CONFIG_NAME'],
    ['an empty cache registry', { repository: 'octo/hello', cache: { registry: '' } }, 'INVALID_REGISTRY'],
    ['a malformed cache ref', { repository: 'octo/hello', cache: { ref: 'UPPER CASE:tag' } }, 'INVALID_CACHE_REF'],
    ['a username without a password', { repository: 'octo/hello', cache: { username: 'u' } }, 'INVALID_ARGUMENT'],
  ] as const)('%s → %s', (_what, req, code) => {
    expect(codeOf(req)).toBe(code);
  });

  it('no cache registry anywhere → INVALID_REGISTRY: a prebuild would have nothing to push to', () => {
    expect(codeOf({ repository: 'octo/hello' }, noRegistry)).toBe('INVALID_REGISTRY');
    // The same request with a registry named in it is fine.
    expect(codeOf({ repository: 'octo/hello', cache: { registry: '127.0.0.1:5000/ns' } }, noRegistry)).toBeNull();
  });

  it('plans the moving ref `up` would use, under the internal id', () => {
    const p = planPrebuild({ repository: 'octo/hello', configName: 'py' }, withRegistry, 'prebuild-0123456789ab');
    const up = planJob({ workspaceId: 'hello', repository: 'octo/hello', configName: 'py' }, withRegistry);
    expect(p.plan.cacheRef).toBe(up.cacheRef);
    expect(p.plan.cacheRef).toBe('127.0.0.1:5000/ns/octo/hello:devcontainer-cache-py');
    expect(p.plan.workspaceId).toBe('prebuild-0123456789ab');
    expect(p.request.workspaceId).toBe('prebuild-0123456789ab');
    expect(p.request.scope).toBe('node');
    expect(p.plan.pushOffReason).toBeNull();
  });
});

describe('prebuildId', () => {
  it('is a valid workspace id with 48 random bits, different every time', () => {
    const ids = new Set(Array.from({ length: 200 }, () => prebuildId()));
    expect(ids.size).toBe(200);
    for (const id of ids) {
      expect(id).toMatch(/^prebuild-[0-9a-f]{12}$/);
      expect(validateWorkspaceId(id)).toBe(id);
    }
  });
});

describe('skip reasons decided after the clone or the login', () => {
  it('a config that builds nothing is skipped with its reason; a Dockerfile config is built', () => {
    expect(configSkipReason(null)).toBe('no devcontainer config in the repository');
    expect(configSkipReason(discovered('image'))).toBe('image-based config: no built image to push');
    expect(configSkipReason(discovered('compose'))).toBe('compose-based config: no built image to push');
    expect(configSkipReason(discovered('dockerfile'))).toBeNull();
  });

  it('no credentials, or node credentials on a node that allows host access, mean no push: skipped', () => {
    const deny = configFromEnv({});
    const allow = configFromEnv({ WARMSTART_HOST_ACCESS: 'allow' });
    const node = { registry: '127.0.0.1:5000', username: 'u', password: 'p', source: 'static' as const };
    const job = { ...node, source: 'job' as const };
    expect(pushSkipReason(deny, null)).toBe('no registry credentials to push with');
    expect(pushSkipReason(deny, node)).toBeNull();
    expect(pushSkipReason(allow, job)).toBeNull();
    expect(pushSkipReason(allow, node)).toMatch(/^not pushed with the node's own static registry credentials/);
  });
});
