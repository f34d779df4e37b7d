/**
 * Golden image naming rules (docs/machines.md "Golden images"): every rule has a
 * value just inside and just outside it, and each refusal has its stable code.
 */
import { describe, expect, it } from 'vitest';
import { isWarmstartError } from '../../../agent/src/errors.js';
import {
  DEFAULT_TAG,
  IMAGE_NAME,
  IMAGE_TAG,
  localRef,
  mergeCapabilities,
  parseCapabilitiesLabel,
  parseImageArg,
  pushRef,
  validateCapabilities,
  validateImageName,
  validateImageTag,
  validateOwner,
} from '../../../agent/src/images/rules.js';

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (!isWarmstartError(err)) throw err;
    expect(err.isInputError, err.code).toBe(true);
    return err.code;
  }
}

describe('image name: [a-z0-9][a-z0-9._-]{1,63}', () => {
  it('is the documented regex (docs/machines.md), anchored', () => {
    expect(IMAGE_NAME.source).toBe('^[a-z0-9][a-z0-9._-]{1,63}$');
  });

  it.each([
    ['2 chars (shortest)', 'ab'],
    ['64 chars (longest)', 'a'.repeat(64)],
    ['digits first', '9lives'],
    ['dot, underscore, dash inside', 'py3.12_base-img'],
    ['double underscore', 'a__b'],
    ['a run of dashes', 'a---b'],
  ])('accepts %s', (_label, name) => {
    expect(validateImageName(name)).toBe(name);
  });

  it.each([
    ['1 char (too short)', 'a'],
    ['65 chars (too long)', 'a'.repeat(65)],
    ['empty', ''],
    ['uppercase', 'Golden'],
    ['one uppercase letter', 'goldEn'],
    ['leading .', '.ab'],
    ['leading -', '-ab'],
    ['leading _', '_ab'],
    ['a slash', 'a/b'],
    ['a colon', 'a:b'],
    ['a space', 'a b'],
    ['non-ascii', 'gölden'],
  ])('refuses %s with INVALID_IMAGE_NAME', (_label, name) => {
    expect(codeOf(() => validateImageName(name))).toBe('INVALID_IMAGE_NAME');
  });

  // The documented regex (docs/machines.md "Golden images") allows these, Docker's reference grammar does not:
  // refused up front rather than by the engine halfway through a create.
  it.each([
    ['trailing -', 'ab-'],
    ['trailing .', 'ab.'],
    ['two dots', 'a..b'],
    ['dot then dash', 'a.-b'],
    ['three underscores', 'a___b'],
  ])('refuses %s (Docker grammar) with INVALID_IMAGE_NAME', (_label, name) => {
    expect(IMAGE_NAME.test(name)).toBe(true);
    expect(codeOf(() => validateImageName(name))).toBe('INVALID_IMAGE_NAME');
  });
});

describe('image tag: [A-Za-z0-9._-]{1,63}, default latest', () => {
  it('is the documented regex (docs/machines.md), anchored', () => {
    expect(IMAGE_TAG.source).toBe('^[A-Za-z0-9._-]{1,63}$');
  });

  it.each([
    ['empty → latest', '', DEFAULT_TAG],
    ['absent → latest', undefined, DEFAULT_TAG],
    ['null → latest', null, DEFAULT_TAG],
    ['1 char', 'v', 'v'],
    ['63 chars (longest)', 'T'.repeat(63), 'T'.repeat(63)],
    ['mixed case, dots, dashes, underscores', 'Py3.12-slim_V2', 'Py3.12-slim_V2'],
    ['leading underscore', '_x', '_x'],
  ])('accepts %s', (_label, tag, want) => {
    expect(validateImageTag(tag)).toBe(want);
    expect(DEFAULT_TAG).toBe('latest');
  });

  it.each([
    ['64 chars (too long)', 'T'.repeat(64)],
    ['a colon', 'v1:2'],
    ['a slash', 'v1/2'],
    ['a plus', 'v1+2'],
    ['a space', 'v 1'],
    ['an @', 'v@1'],
    ['non-ascii', 'vé'],
  ])('refuses %s with INVALID_IMAGE_TAG', (_label, tag) => {
    expect(codeOf(() => validateImageTag(tag))).toBe('INVALID_IMAGE_TAG');
  });

  it.each([
    ['leading .', '.v1'],
    ['leading -', '-v1'],
  ])('refuses %s (Docker grammar) with INVALID_IMAGE_TAG', (_label, tag) => {
    expect(IMAGE_TAG.test(tag)).toBe(true);
    expect(codeOf(() => validateImageTag(tag))).toBe('INVALID_IMAGE_TAG');
  });
});

describe('custom capabilities: up to 10, ≤ 40 chars, no comma, stored as custom:<c>', () => {
  const caps = (n: number): string[] => Array.from({ length: n }, (_, i) => `cap${i}`);

  it('accepts none', () => {
    expect(validateCapabilities(undefined)).toEqual([]);
    expect(validateCapabilities([])).toEqual([]);
  });

  it('accepts 10 and stores each as custom:<c>', () => {
    expect(validateCapabilities(caps(10))).toEqual(caps(10).map((c) => `custom:${c}`));
  });

  it('refuses 11 with INVALID_CAPABILITY', () => {
    expect(codeOf(() => validateCapabilities(caps(11)))).toBe('INVALID_CAPABILITY');
  });

  it('counts distinct values: 11 given with one repeated is 10', () => {
    expect(validateCapabilities([...caps(10), 'cap3'])).toHaveLength(10);
  });

  it('accepts 40 characters, refuses 41', () => {
    expect(validateCapabilities(['x'.repeat(40)])).toEqual([`custom:${'x'.repeat(40)}`]);
    expect(codeOf(() => validateCapabilities(['x'.repeat(41)]))).toBe('INVALID_CAPABILITY');
  });

  it('counts characters, not bytes: 40 non-ASCII characters are fine', () => {
    expect(validateCapabilities(['é'.repeat(40)])).toHaveLength(1);
    expect(codeOf(() => validateCapabilities(['é'.repeat(41)]))).toBe('INVALID_CAPABILITY');
  });

  it.each([
    ['a comma', 'gpu,cuda'],
    ['a lone comma', ','],
    ['empty', ''],
    ['a newline', 'gpu\n'],
  ])('refuses %s with INVALID_CAPABILITY', (_label, c) => {
    expect(codeOf(() => validateCapabilities([c]))).toBe('INVALID_CAPABILITY');
  });

  it('accepts what is not a comma: spaces, colons, slashes, dots', () => {
    expect(validateCapabilities(['python 3.12', 'arch:arm64', 'gpu/nvidia'])).toEqual([
      'custom:python 3.12',
      'custom:arch:arm64',
      'custom:gpu/nvidia',
    ]);
  });

  it('de-duplicates what is given, keeping the order', () => {
    expect(validateCapabilities(['b', 'a', 'b'])).toEqual(['custom:b', 'custom:a']);
  });
});

describe('capabilities inherited from the source image', () => {
  it('parses the comma-joined label, dropping blanks', () => {
    expect(parseCapabilitiesLabel(undefined)).toEqual([]);
    expect(parseCapabilitiesLabel('')).toEqual([]);
    expect(parseCapabilitiesLabel('docker, python,,custom:gpu ,')).toEqual(['docker', 'python', 'custom:gpu']);
  });

  it('merges inherited first, then the new custom ones, each once', () => {
    const inherited = parseCapabilitiesLabel('docker,custom:gpu,python,docker');
    const custom = validateCapabilities(['gpu', 'cuda', 'cuda']);
    expect(mergeCapabilities(inherited, custom)).toEqual(['docker', 'custom:gpu', 'python', 'custom:cuda']);
  });

  it('does not count inherited ones against the limit of 10', () => {
    const inherited = Array.from({ length: 10 }, (_, i) => `custom:old${i}`);
    const merged = mergeCapabilities(inherited, validateCapabilities(Array.from({ length: 10 }, (_, i) => `new${i}`)));
    expect(merged).toHaveLength(20);
  });
});

describe('refs and arguments', () => {
  it('local and pushed refs', () => {
    expect(localRef('py', 'latest')).toBe('warmstart-golden/py:latest');
    expect(pushRef({ host: '127.0.0.1:5000', namespace: null }, 'py', 'v1')).toBe('127.0.0.1:5000/golden/py:v1');
    expect(pushRef({ host: 'ghcr.io', namespace: 'acme/cache' }, 'py', 'v1')).toBe('ghcr.io/acme/cache/golden/py:v1');
  });

  it('NAME[:TAG] with the same rules', () => {
    expect(parseImageArg('py')).toEqual({ name: 'py', tag: 'latest' });
    expect(parseImageArg('py:v1')).toEqual({ name: 'py', tag: 'v1' });
    expect(parseImageArg('py:')).toEqual({ name: 'py', tag: 'latest' });
    expect(codeOf(() => parseImageArg('Py:v1'))).toBe('INVALID_IMAGE_NAME');
    expect(codeOf(() => parseImageArg(`py:${'v'.repeat(64)}`))).toBe('INVALID_IMAGE_TAG');
    expect(codeOf(() => parseImageArg('py:v1:v2'))).toBe('INVALID_IMAGE_TAG');
  });

  it('owners', () => {
    expect(validateOwner('alice')).toBe('alice');
    expect(validateOwner('Alice.B@example.com')).toBe('Alice.B@example.com');
    expect(validateOwner('a'.repeat(128))).toHaveLength(128);
    expect(codeOf(() => validateOwner('a'.repeat(129)))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => validateOwner(''))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => validateOwner('a b'))).toBe('INVALID_ARGUMENT');
  });
});
