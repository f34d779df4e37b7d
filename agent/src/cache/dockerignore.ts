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

/**
 * One step of a compiled pattern. Matching runs these as an NFA, one pass
 * over the path with a set of positions, so its time is bounded by path
 * length × pattern length whatever the pattern: a RegExp with several `*` or
 * `**` backtracks exponentially on a path that almost matches, and a repo's
 * `.dockerignore` or COPY line must not be able to stall the agent.
 */
type Token =
  | { t: 'lit'; c: string } // one code point
  | { t: 'one' } // `?`: one code point, not `/`
  | { t: 'class'; re: RegExp } // `[...]`: one code point
  | { t: 'star' } // `*`: any run without `/`
  | { t: 'rest' } // `**` at the end: anything
  | { t: 'segs' }; // `**` elsewhere: nothing, or anything ending with `/`

/** A compiled pattern matched against a whole `/`-separated path. */
export class Glob {
  constructor(private readonly tokens: readonly Token[]) {}

  test(path: string): boolean {
    const m = this.tokens.length;
    // State k <= m: the next token to match is k (m: done). State m + 1 + k:
    // inside the `segs` token k, which ends after a `/`.
    let cur = this.closure([0]);
    for (const ch of path) {
      const next: number[] = [];
      for (let s = 0; s < cur.length; s++) {
        if (!cur[s]) continue;
        if (s > m) {
          next.push(s);
          if (ch === '/') next.push(s - m);
          continue;
        }
        if (s === m) continue;
        const tok = this.tokens[s]!;
        switch (tok.t) {
          case 'lit':
            if (ch === tok.c) next.push(s + 1);
            break;
          case 'one':
            if (ch !== '/') next.push(s + 1);
            break;
          case 'class':
            if (tok.re.test(ch)) next.push(s + 1);
            break;
          case 'star':
            if (ch !== '/') next.push(s);
            break;
          case 'rest':
            next.push(s);
            break;
          case 'segs':
            next.push(m + 1 + s);
            if (ch === '/') next.push(s + 1);
            break;
        }
      }
      if (next.length === 0) return false;
      cur = this.closure(next);
    }
    return cur[m] === true;
  }

  /** The states reachable from `from` without reading: `*` and `**` may match nothing. */
  private closure(from: number[]): boolean[] {
    const m = this.tokens.length;
    const on = new Array<boolean>(2 * m + 1).fill(false);
    const work = [...from];
    while (work.length > 0) {
      const s = work.pop()!;
      if (on[s]) continue;
      on[s] = true;
      const t = s < m ? this.tokens[s]!.t : null;
      if (t === 'star' || t === 'rest' || t === 'segs') work.push(s + 1);
    }
    return on;
  }
}

/**
 * Compiles one Go `filepath.Match` pattern (`*` and `?` never match `/`,
 * `[...]` / `[^...]` classes with ranges, `\` escapes the next character).
 * With `doubleStar`, `**` matches any number of path segments as in
 * `.dockerignore`. Returns null for a pattern Go refuses (ErrBadPattern): an
 * unclosed class, an empty one, a trailing `\`.
 */
function compile(pattern: string, doubleStar: boolean): Glob | null {
  const chars = Array.from(pattern); // code points, as Go matches runes
  const tokens: Token[] = [];
  // `**/**/` means what `**/` means and `**` what `*` means without
  // doubleStar: a repeat adds nothing but states.
  const push = (tok: Token): void => {
    if (tok.t !== tokens[tokens.length - 1]?.t) tokens.push(tok);
  };
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (doubleStar && chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++; // `**/` is read as `**`
        // `**` at the end takes everything; elsewhere any number of whole segments.
        push(i + 1 >= chars.length ? { t: 'rest' } : { t: 'segs' });
      } else {
        push({ t: 'star' });
      }
    } else if (ch === '?') {
      tokens.push({ t: 'one' });
    } else if (ch === '\\') {
      const next = chars[++i];
      if (next === undefined) return null;
      tokens.push({ t: 'lit', c: next });
    } else if (ch === '[') {
      const cls = compileClass(chars, i + 1);
      if (cls === null) return null;
      tokens.push({ t: 'class', re: new RegExp(`^${cls.source}$`, 'u') });
      i = cls.end;
    } else {
      tokens.push({ t: 'lit', c: ch });
    }
  }
  return new Glob(tokens);
}

/** A Go character class starting after its `[`, as a one-code-point RegExp class; `end` is the index of its `]`. */
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
 * Go's `filepath.Match(pattern, name)` over a whole `/`-separated path, or
 * null when Go would report ErrBadPattern (BuildKit then copies nothing).
 * With `doubleStar`, one `.dockerignore` pattern as moby reads it.
 */
export function compileGlob(pattern: string, doubleStar = false): Glob | null {
  return compile(pattern, doubleStar);
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
  re: Glob | null;
}

/** The rules of one `.dockerignore` file. */
export class DockerIgnore {
  private readonly rules: Rule[];
  /** How many pattern tests `ignores` has run: the caller bounds the work a repo can ask for. */
  tests = 0;

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
      this.tests++;
      let match = re.test(rel);
      for (let n = 1; !match && n < parts.length; n++) {
        this.tests++;
        match = re.test(parts.slice(0, n).join('/'));
      }
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
    rules.push({ negated, re: compile(pattern, true) });
  }
  return rules;
}
