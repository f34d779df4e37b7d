import path from 'node:path';

/**
 * Pattern matching the way Docker does it, for the content key: Go's
 * `filepath.Match` (used by BuildKit to resolve `COPY` wildcards) and the
 * `.dockerignore` rules of moby/patternmatcher (used to filter the build
 * context). Written here rather than taken from `@balena/dockerignore` (in
 * node_modules through dockerode): that one follows moby 19.03, passes
 * `+ ( ) | { }` unescaped into a RegExp (so `a(b` throws and `c++` means
 * something else) and matches case-insensitively by default.
 *
 * Where the two can only disagree on odd inputs, this errs towards matching
 * fewer ignore patterns: a file hashed needlessly costs a cache miss, a file
 * wrongly left out could cost a wrong exact hit.
 */

// Characters with a meaning in a JS RegExp (with the `u` flag, escaping anything
// else is a syntax error, so escape exactly these).
const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/]/;

function literal(ch: string): string {
  return REGEXP_SYNTAX.test(ch) ? `\\${ch}` : ch;
}

/**
 * Compiles one Go `filepath.Match` pattern (`*` and `?` never match `/`,
 * `[...]` / `[^...]` classes with ranges, `\` escapes the next character)
 * into the body of a RegExp. With `doubleStar`, `**` matches any number of
 * path segments as in `.dockerignore`. Returns null for a pattern Go refuses
 * (ErrBadPattern): an unclosed class, an empty one, a trailing `\`.
 */
function compileBody(pattern: string, doubleStar: boolean): string | null {
  const chars = Array.from(pattern); // code points, as Go matches runes
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (doubleStar && chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++; // `**/` is read as `**`
        // `**` at the end takes everything; elsewhere any number of whole segments.
        out += i + 1 >= chars.length ? '.*' : '(?:.*/)?';
      } else {
        out += '[^/]*';
      }
    } else if (ch === '?') {
      out += '[^/]';
    } else if (ch === '\\') {
      const next = chars[++i];
      if (next === undefined) return null;
      out += literal(next);
    } else if (ch === '[') {
      const cls = compileClass(chars, i + 1);
      if (cls === null) return null;
      out += cls.source;
      i = cls.end;
    } else {
      out += literal(ch);
    }
  }
  return out;
}

/** A Go character class starting after its `[`; `end` is the index of its `]`. */
function compileClass(chars: string[], start: number): { source: string; end: number } | null {
  let i = start;
  let negated = false;
  if (chars[i] === '^') {
    negated = true;
    i++;
  }
  const classChar = (ch: string): string => (/[\\\]^[-]/.test(ch) ? `\\${ch}` : ch);
  // Go: one escaped or plain character; `-` and `]` must be escaped where a character is expected.
  const one = (): string | null => {
    const ch = chars[i];
    if (ch === undefined || ch === '-' || ch === ']') return null;
    i++;
    if (ch !== '\\') return ch;
    const next = chars[i++];
    return next === undefined ? null : next;
  };
  let body = '';
  let ranges = 0;
  for (;;) {
    if (chars[i] === ']' && ranges > 0) break;
    const lo = one();
    if (lo === null) return null;
    let hi = lo;
    if (chars[i] === '-') {
      i++;
      const h = one();
      if (h === null) return null;
      hi = h;
    }
    body += lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`;
    ranges++;
  }
  // A reversed range (`[z-a]`) matches nothing in Go, where JS refuses it: keep
  // the RegExp valid (`[]` matches nothing, `[^]` anything).
  try {
    new RegExp(`[${body}]`, 'u');
  } catch {
    return { source: negated ? '[^]' : '[]', end: i };
  }
  return { source: `[${negated ? '^' : ''}${body}]`, end: i };
}

/**
 * Go's `filepath.Match(pattern, name)` as a RegExp over a whole `/`-separated
 * path, or null when Go would report ErrBadPattern (BuildKit then copies nothing).
 */
export function globToRegExp(pattern: string): RegExp | null {
  const body = compileBody(pattern, false);
  return body === null ? null : new RegExp(`^${body}$`, 'u');
}

/** True when a path segment holds a `filepath.Match` metacharacter. */
export function hasWildcard(p: string): boolean {
  return /[*?[\\]/.test(p);
}

/** Go's filepath.Clean for `/` paths: `.`/`..` resolved, no trailing or doubled `/`, '' → '.'. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

interface Rule {
  /** A `!` exception: a match re-includes the path. */
  negated: boolean;
  /** null when the pattern is invalid: it never matches (the build itself fails on it). */
  re: RegExp | null;
}

/** The rules of one `.dockerignore` file. */
export class DockerIgnore {
  private readonly rules: Rule[];

  constructor(text: string) {
    this.rules = parseRules(text);
  }

  /** True when some `!` rule could bring back a path inside an ignored directory. */
  get hasExceptions(): boolean {
    return this.rules.some((r) => r.negated);
  }

  /**
   * Whether a context-relative path (`/`-separated, no leading `./`) is left
   * out of the build context. As in moby's `MatchesOrParentMatches`: a rule
   * matches a path or any of its parent directories, and the last rule that
   * matches decides.
   */
  ignores(rel: string): boolean {
    const parts = rel.split('/');
    let ignored = false;
    for (const rule of this.rules) {
      // Only a rule that could flip the current answer needs testing.
      if (rule.negated !== ignored || rule.re === null) continue;
      const re = rule.re;
      let match = re.test(rel);
      for (let n = 1; !match && n < parts.length; n++) match = re.test(parts.slice(0, n).join('/'));
      if (match) ignored = !rule.negated;
    }
    return ignored;
  }
}

/** moby's dockerignore.ReadAll followed by patternmatcher.New. */
function parseRules(text: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    if (raw.startsWith('#')) continue; // only a `#` in the first column starts a comment
    let pattern = raw.trim();
    if (pattern === '') continue;
    const negated = pattern.startsWith('!');
    if (negated) pattern = pattern.slice(1).trim();
    if (pattern === '') continue; // a lone `!` is an error for docker; it matches nothing here
    pattern = cleanPath(pattern);
    // Absolute patterns are relative to the context root.
    if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    const body = compileBody(pattern, true);
    rules.push({ negated, re: body === null ? null : new RegExp(`^${body}$`, 'u') });
  }
  return rules;
}
