import fc from 'fast-check';

/**
 * Strings that break parsers, routers and file paths: traversal in every
 * spelling, separators, NUL and other controls, lone surrogates, RTL marks,
 * emoji and combining sequences, look-alike full-width dots, option-like
 * values, shell and URL metacharacters, and lengths right at and past the
 * limits of the API's schemas (63, 64, 100, 101, 128, 2048 ...).
 */
export const NASTY: readonly string[] = [
  '',
  ' ',
  '.',
  '..',
  '...',
  '../',
  '..\\',
  '../../../../etc/passwd',
  '..%2f..%2fetc',
  '%2e%2e',
  '%2E%2E%2F',
  '%252e%252e%252f',
  '.%2e',
  '%c0%ae%c0%ae',
  '/',
  '//',
  '%2F',
  '\\',
  '%5C',
  '/etc/passwd',
  '~',
  '~root',
  'C:\\Windows',
  '\\\\server\\share',
  'file:///etc/passwd',
  '\u0000',
  'a\u0000b',
  '%00',
  '\n',
  'a\r\nX-Injected: 1',
  '\t',
  '\u007f',
  '\u0085',
  '\uD800',
  '\uDFFF',
  'a\uD83Db',
  '\u202Eevil\u202C',
  '\u200F\u05D0\u05D1',
  '\u200B',
  '\uFEFF',
  '🦄',
  '👩‍👩‍👧‍👦',
  'e\u0301',
  '．．',
  'ＡＢＣ',
  '-',
  '-a',
  '--help',
  '--upload-pack=touch /tmp/x',
  '-oProxyCommand=id',
  'ext::sh -c id',
  '$(id)',
  '`id`',
  "'; DROP TABLE w; --",
  '<script>',
  '{{7*7}}',
  '%s%n',
  '__proto__',
  'constructor',
  'null',
  'true',
  '0',
  '-1',
  '1e309',
  'NaN',
  'A',
  'a',
  'a-',
  'a'.repeat(63),
  'a'.repeat(64),
  'a'.repeat(100),
  'a'.repeat(101),
  'a'.repeat(129),
  'x'.repeat(2049),
];

/** A short run of one string repeated: the big-but-under-the-body-limit case. */
const repeated = fc
  .tuple(fc.constantFrom('a', '.', '/', '🦄', '\u0000', '%', '\\'), fc.constantFrom(65, 257, 4097, 40_000))
  .map(([s, n]) => s.repeat(n));

/** Any string the fuzzer uses where the API or CLI expects a name, id, path or URL. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...NASTY), fc.stringMatching(/^[a-z0-9-]{0,8}$/), fc.constantFrom(...NASTY)).map((p) => p.join('')),
  },
  { weight: 1, arbitrary: repeated },
);

/**
 * Percent-encodes a path segment the way a careless client might: `plain`
 * leaves it as it is (so `/` and `..` reach the router), `component` encodes
 * it, `double` encodes it twice. A lone surrogate, which encodeURIComponent
 * refuses, becomes its three WTF-8 bytes: invalid UTF-8 on the wire.
 */
export function encodeSegment(s: string, how: 'plain' | 'component' | 'double'): string {
  if (how === 'plain') return s;
  const once = encodeLoosely(s);
  return how === 'double' ? once.replace(/%/g, '%25') : once;
}

function encodeLoosely(s: string): string {
  let out = '';
  for (const ch of s) {
    const unit = ch.charCodeAt(0);
    if (ch.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
      out += `%${(0xe0 | (unit >> 12)).toString(16).toUpperCase()}%${(0x80 | ((unit >> 6) & 0x3f)).toString(16).toUpperCase()}%${(0x80 | (unit & 0x3f)).toString(16).toUpperCase()}`;
    } else out += encodeURIComponent(ch);
  }
  return out;
}

/** Safe to put in a request line or header as bytes: every UTF-16 unit is ≤ 0xFF, else its UTF-8 bytes. */
export function latin1Bytes(s: string): Buffer {
  return /^[\x00-\xff]*$/.test(s) ? Buffer.from(s, 'latin1') : Buffer.from(s, 'utf8');
}
