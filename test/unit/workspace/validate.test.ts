import { describe, it, expect } from 'vitest';
import { WarmstartError } from '../../../agent/src/errors.js';
import { validateConfigName, validateWorkspaceId } from '../../../agent/src/workspace/validate.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WarmstartError);
    return (err as WarmstartError).code;
  }
  return undefined;
}

describe('validateWorkspaceId', () => {
  it.each(['a', '0', 'ws-1', 'abc-def-123', 'a'.repeat(63), '9-'])('accepts %j', (id) => {
    expect(validateWorkspaceId(id)).toBe(id);
  });

  it.each([
    ['empty', ''],
    ['uppercase', 'Ws1'],
    ['leading dash', '-ws'],
    ['underscore', 'ws_1'],
    ['dot', 'ws.1'],
    ['slash', 'ws/1'],
    ['space', 'ws 1'],
    ['trailing newline', 'ws1\n'],
    ['64 chars', 'a'.repeat(64)],
    ['non-ascii', 'wé'],
  ])('refuses %s', (_label, id) => {
    expect(codeOf(() => validateWorkspaceId(id))).toBe('INVALID_WORKSPACE_ID');
  });

  it('quotes the rule in the message', () => {
    expect(() => validateWorkspaceId('Bad')).toThrow(/\^\[a-z0-9\]\[a-z0-9-\]\{0,62\}\$/);
  });
});

describe('validateConfigName', () => {
  it.each(['python', 'python 3.12', 'a.b', 'x_y-z', 'é', 'a'.repeat(100), '日'.repeat(100)])('accepts %j', (name) => {
    expect(validateConfigName(name)).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['slash', 'a/b'],
    ['backslash', 'a\\b'],
    ['dot-dot', '..'],
    ['embedded dot-dot', 'a..b'],
    ['NUL', 'a\u0000b'],
    ['tab', 'a\tb'],
    ['newline', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['C1 control', 'a\u0085b'],
    ['leading dot', '.hidden'],
    ['lone dot', '.'],
    ['101 chars', 'a'.repeat(101)],
    ['leading space', ' python'],
    ['trailing space', 'python '],
    ['encoded ../', '%2e%2e%2fetc'],
    ['encoded .. in capitals', '%2E%2E'],
    ['encoded slash', 'a%2fb'],
    ['encoded NUL', 'a%00b'],
  ])('refuses %s', (_label, name) => {
    expect(codeOf(() => validateConfigName(name))).toBe('INVALID_CONFIG_NAME');
  });

  it.each(['100%', 'a%zz', '50% off'])('accepts a %% that is no escape: %j', (name) => {
    expect(validateConfigName(name)).toBe(name);
  });

  it('says why an escaped name is refused', () => {
    expect(() => validateConfigName('%2e%2e')).toThrow(/must not contain %-escapes/);
  });
});
