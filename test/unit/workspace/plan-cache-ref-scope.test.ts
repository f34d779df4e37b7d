import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import type { PrepareRequest } from '../../../agent/src/workspace/request.js';

const config = configFromEnv({ WARMSTART_CACHE_REGISTRY: '127.0.0.1:5000/ns' });
const own = '127.0.0.1:5000/ns/gitlab.example/acme/app';

function plan(ref: string, scope?: 'node' | 'workspace', extra: Partial<PrepareRequest> = {}) {
  const req: PrepareRequest = {
    workspaceId: 'ws-1',
    repository: 'https://gitlab.example/acme/app',
    ...(scope ? { scope } : {}),
    ...extra,
    cache: { ...extra.cache, ref },
  };
  return planJob(req, config);
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    return (err as WarmstartError).code;
  }
}

describe('planJob: an explicit cache ref and the caller scope', () => {
  it.each([
    ['another repository of the same name on GitHub', '127.0.0.1:5000/ns/acme/app:devcontainer-cache'],
    ['another host', '127.0.0.1:5000/ns/gitlab.other/acme/app:x'],
    ['a sibling that shares a prefix', `${own}-evil:x`],
    ['a parent', '127.0.0.1:5000/ns/gitlab.example/acme:x'],
    ['another registry', `127.0.0.2:5000/ns/gitlab.example/acme/app:x`],
    ['an exact tag of another repository', '127.0.0.1:5000/ns/acme/victim:exact-0123'],
  ])('a workspace-scoped job may not name %s', (_what, ref) => {
    expect(codeOf(() => plan(ref, 'workspace'))).toBe('CACHE_REF_FORBIDDEN');
    // the operator may
    expect(plan(ref, 'node').cacheRef).toBe(ref);
    expect(plan(ref).cacheRef).toBe(ref);
  });

  it.each([
    ['its own path', `${own}:devcontainer-cache`],
    ['its own path with another tag', `${own}:mine`],
    ['its own path without a tag', own],
    ['a path below its own', `${own}/nightly:x`],
  ])('a workspace-scoped job may name %s', (_what, ref) => {
    expect(plan(ref, 'workspace').cacheRef).toMatch(new RegExp(`^${own.replace(/[.]/g, '\\.')}(/nightly)?:`));
  });

  it('is judged against the job registry, and refused when there is none', () => {
    const mine = '127.0.0.1:5002/gitlab.example/acme/app:x';
    expect(plan(mine, 'workspace', { cache: { registry: '127.0.0.1:5002' } }).cacheRef).toBe(mine);
    const bare = configFromEnv({});
    expect(
      codeOf(() =>
        planJob({ workspaceId: 'ws-1', repository: '/srv/acme/app', scope: 'workspace', cache: { ref: '127.0.0.1:5000/acme/app:x' } }, bare),
      ),
    ).toBe('CACHE_REF_FORBIDDEN');
  });

  it('refuses even when the cache is off for the job', () => {
    expect(codeOf(() => plan('127.0.0.1:5000/ns/acme/victim:x', 'workspace', { cache: { disabled: true } }))).toBe('CACHE_REF_FORBIDDEN');
  });
});

describe('planJob: a cache registry a workspace-scoped job names', () => {
  const named = (registry: string, scope: 'node' | 'workspace') =>
    codeOf(() => planJob({ workspaceId: 'ws-1', repository: 'https://ns/acme/app', scope, cache: { registry } }, config));

  it('may not move the node registry to another namespace, where paths can collide', () => {
    // `ns/acme/app` on a git host named `ns` would be <registry>/ns/acme/app without a namespace:
    // the path of GitHub's acme/app under the node's namespace `ns`.
    expect(named('127.0.0.1:5000', 'workspace')).toBe('CACHE_REF_FORBIDDEN');
    expect(named('127.0.0.1:5000/other', 'workspace')).toBe('CACHE_REF_FORBIDDEN');
  });

  it('may name the node registry as configured, or a registry the node holds nothing for', () => {
    expect(named('127.0.0.1:5000/ns', 'workspace')).toBeNull();
    expect(named('registry.example.com/team', 'workspace')).toBeNull();
  });

  it('a node-scoped caller may name any', () => {
    expect(named('127.0.0.1:5000', 'node')).toBeNull();
  });
});
