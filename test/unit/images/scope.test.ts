import { describe, expect, it } from 'vitest';
import { assertNameInWorkspace } from '../../../agent/src/images/rules.js';
import { callerOf } from '../../../agent/src/server/caller.js';

describe('golden image names for a workspace-scoped caller', () => {
  it.each(['ws-a', 'ws-a-base', 'ws-a-v2.1', 'ws-a--x'])('%s is under workspace ws-a', (name) => {
    expect(() => assertNameInWorkspace(name, 'ws-a')).not.toThrow();
  });

  it.each(['other', 'ws-ab', 'ws-a.b', 'ws-a_b', 'ws', 'xws-a', 'ws-b-ws-a'])('%s is refused with IMAGE_NAME_FORBIDDEN', (name) => {
    let err: unknown;
    try {
      assertNameInWorkspace(name, 'ws-a');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'IMAGE_NAME_FORBIDDEN' });
    expect((err as Error).message).toContain('ws-a-<suffix>');
  });
});

describe('callerOf', () => {
  it('a JWT with a workspace claim is workspace-scoped, owned by its subject; everything else is node-wide', () => {
    expect(callerOf({ kind: 'jwt', subject: 'alice', workspace: 'ws-a' })).toEqual({ scope: 'workspace', owner: 'alice' });
    expect(callerOf({ kind: 'jwt', workspace: 'ws-a' })).toEqual({ scope: 'workspace', owner: null });
    expect(callerOf({ kind: 'jwt', subject: 'ops' })).toEqual({ scope: 'node', owner: 'ops' });
    expect(callerOf({ kind: 'token' })).toEqual({ scope: 'node', owner: null });
    expect(callerOf({ kind: 'none' })).toEqual({ scope: 'node', owner: null });
    expect(callerOf(null)).toEqual({ scope: 'node', owner: null });
  });
});
