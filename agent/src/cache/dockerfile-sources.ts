/**
 * Reads a Dockerfile for what it takes from the build context: the sources
 * of `COPY`/`ADD` and the bind mounts of `RUN --mount`. Only the syntax needed
 * for that is handled (parser directives, line continuations, comments,
 * heredocs, flags, JSON-array form, `$VAR` / `${VAR}` from ARG, ENV and
 * build args). Whatever cannot be read with certainty turns into "hash the
 * whole context": a needless cache miss is cheap, a wrong exact hit is not.
 */

/** What a Dockerfile reads from its build context. */
export interface DockerfileSources {
  /**
   * Context-relative paths or Go wildcard patterns, as written once variables
   * are expanded (not cleaned: the caller checks them against the context).
   */
  sources: string[];
  /** Set when the sources cannot be known before the build: why the whole context counts. */
  wholeContext: string | null;
}

const UNKNOWN = Symbol('unknown');
type Value = string | typeof UNKNOWN;

// BuildKit's parser directive syntax; directives are only read at the very top.
const DIRECTIVE = /^#[ \t]*([A-Za-z][A-Za-z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const HEREDOC = /(?:^|\s)\d*<<(-?)(["']?)([^\s"'<>|&;]+)\2/g;
const VAR_REF = /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g;
// `NAME`, `NAME=value`, `NAME="value"`, `NAME='value'` (ARG and ENV's `=` form).
const ASSIGNMENT = /\s*([A-Za-z_][A-Za-z0-9_]*)(?:=(?:"([^"\\]*)"|'([^'\\]*)'|([^\s"'\\]*)))?(?=\s|$)/y;
const REMOTE = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/|git@)/;

interface Instruction {
  keyword: string;
  rest: string;
}

/** Variables in scope: the global ARGs before the first FROM, then one stage's. */
class Scope {
  private readonly vars = new Map<string, Value>();
  /** An ARG/ENV line that could not be read may have set anything. */
  poisoned = false;
  set(name: string, value: Value): void {
    this.vars.set(name, value);
  }
  has(name: string): boolean {
    return this.vars.has(name);
  }
  /** Undeclared names count as unknown: a base image's ENV can define them. */
  get(name: string): Value {
    return this.poisoned ? UNKNOWN : (this.vars.get(name) ?? UNKNOWN);
  }
}

/**
 * Lists what `text` (a Dockerfile) reads from the build context. `buildArgs`
 * is the config's `build.args`: they override ARG defaults. Values holding a
 * devcontainer variable (`${localEnv:X}`) are not known here.
 */
export function dockerfileSources(text: string, buildArgs: Readonly<Record<string, unknown>> = {}): DockerfileSources {
  const sources: string[] = [];
  let wholeContext: string | null = null;
  const whole = (why: string): void => {
    wholeContext ??= why;
  };
  const buildArg = (name: string): Value | undefined => {
    if (!Object.hasOwn(buildArgs, name)) return undefined;
    const v = buildArgs[name];
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return typeof v === 'string' && !v.includes('${') ? v : UNKNOWN;
  };
  const global = new Scope();
  let stage: Scope | null = null;
  const scope = (): Scope => stage ?? global;
  const expandSource = (raw: string, where: string): void => {
    // Quotes and escapes change a word in ways not modelled here.
    if (/["'\\`]/.test(raw)) return whole(`${where} source ${JSON.stringify(raw)} uses quotes or escapes`);
    const v = expand(raw, scope());
    if (v === UNKNOWN) {
      return whole(`${where} source ${JSON.stringify(raw)} depends on a value known only at build time`);
    }
    sources.push(v);
  };

  for (const { keyword, rest } of instructions(text)) {
    switch (keyword) {
      case 'FROM':
        stage = new Scope();
        break;
      case 'ARG':
        assign(rest, scope(), (name, value) => {
          const given = buildArg(name);
          if (given !== undefined) return given;
          if (value !== undefined) return value;
          // `ARG X` in a stage takes the global default; without one, a build-time value.
          return stage !== null && global.has(name) ? global.get(name) : UNKNOWN;
        });
        break;
      case 'ENV':
        assignEnv(rest, scope());
        break;
      case 'COPY':
      case 'ADD': {
        const { flags, args } = splitFlags(rest);
        // `--from` copies from another stage or an image, not from the context.
        if (flags.some((f) => f.name === 'from')) break;
        const words = copyWords(args);
        for (const src of words.slice(0, -1)) {
          if (src.startsWith('<<')) continue; // heredoc: its text is in the Dockerfile
          if (keyword === 'ADD' && REMOTE.test(src)) continue; // URL or git source
          expandSource(src, keyword);
        }
        break;
      }
      case 'RUN':
        for (const flag of splitFlags(rest).flags) {
          if (flag.name !== 'mount' || flag.value === undefined) continue;
          const mount = parseMount(flag.value);
          if (mount === null) whole(`RUN --mount=${flag.value} cannot be read`);
          // A bind mount without `from` exposes the context (its root by default).
          else if (mount.type === 'bind' && mount.from === undefined) expandSource(mount.source, 'RUN --mount');
        }
        break;
      default:
        // ONBUILD and the rest read nothing from the context in this build.
        break;
    }
  }
  return { sources: [...new Set(sources)], wholeContext };
}

/** Logical instructions: directives read, comments dropped, continuations joined, heredoc bodies skipped. */
export function* instructions(text: string): Generator<Instruction> {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]!);
    if (m === null) break;
    if (m[1]!.toLowerCase() === 'escape' && (m[2] === '`' || m[2] === '\\')) escape = m[2];
  }
  let buf = '';
  let continued = false;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    const lead = line.trimStart();
    // Docker drops comment lines (and blank ones) even inside a continuation.
    if (lead.startsWith('#') || (continued && lead === '')) continue;
    const body = line.trimEnd();
    if (body.endsWith(escape)) {
      buf += body.slice(0, -escape.length);
      continued = true;
      continue;
    }
    const logical = (buf + line).trim();
    buf = '';
    continued = false;
    const ins = split(logical);
    if (ins === null) continue;
    yield ins;
    if (ins.keyword === 'RUN' || ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      i = skipHeredocs(lines, i, ins.rest);
    }
  }
  const last = split(buf.trim());
  if (last !== null) yield last;
}

function split(logical: string): Instruction | null {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(logical);
  return m === null ? null : { keyword: m[1]!.toUpperCase(), rest: m[2]! };
}

/**
 * Skips the bodies of the heredocs opened on an instruction line; returns the
 * index of the last line consumed. A terminator is accepted with surrounding
 * blanks, so a body can only end early (its lines then read as instructions,
 * which adds inputs) and never swallow a real instruction.
 */
function skipHeredocs(lines: string[], at: number, rest: string): number {
  let i = at;
  for (const m of rest.matchAll(HEREDOC)) {
    const name = m[3]!;
    while (i + 1 < lines.length) {
      i++;
      if (lines[i]!.trim() === name) break;
    }
  }
  return i;
}

interface Flag {
  name: string;
  value: string | undefined;
}

const FLAG = /^--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)/;

/** Leading `--name[=value]` flags (BuildKit takes no space-separated flag values). */
export function splitFlags(rest: string): { flags: Flag[]; args: string } {
  const flags: Flag[] = [];
  let s = rest.trim();
  let m: RegExpExecArray | null;
  while ((m = FLAG.exec(s)) !== null) {
    flags.push({ name: m[1]!.toLowerCase(), value: m[2] });
    s = s.slice(m[0].length);
  }
  return { flags, args: s };
}

/** COPY/ADD arguments, JSON-array form first (Docker falls back to words when it is not JSON). */
function copyWords(args: string): string[] {
  if (args.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(args);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    } catch {
      // not JSON: shell form
    }
  }
  return args.split(/\s+/).filter((w) => w !== '');
}

/** `$X` / `${X}` expanded; other forms (`${X:-d}`, `$1`...) or unknown values give UNKNOWN. */
function expand(template: string, scope: Scope): Value {
  if (!template.includes('$')) return template;
  if (template.replace(VAR_REF, '').includes('$')) return UNKNOWN;
  let unknown = false;
  const out = template.replace(VAR_REF, (_m, braced: string | undefined, bare: string | undefined) => {
    const v = scope.get((braced ?? bare)!);
    if (v === UNKNOWN) unknown = true;
    return v === UNKNOWN ? '' : v;
  });
  return unknown ? UNKNOWN : out;
}

/** ARG's `NAME[=value] ...`; `resolve` picks the value from the default and the build args. */
function assign(rest: string, scope: Scope, resolve: (name: string, value: Value | undefined) => Value): void {
  const parsed = assignments(rest);
  if (parsed === null) {
    scope.poisoned = true;
    return;
  }
  for (const [name, raw, literal] of parsed) {
    const value = raw === undefined ? undefined : literal ? raw : expand(raw, scope);
    scope.set(name, resolve(name, value));
  }
}

/** ENV's `K=V ...` form, or the legacy `K V` (the value is the rest of the line). */
function assignEnv(rest: string, scope: Scope): void {
  const legacy = /^([A-Za-z_][A-Za-z0-9_]*)\s+([\s\S]*)$/.exec(rest.trim());
  if (legacy !== null) {
    const value = legacy[2]!.trim();
    scope.set(legacy[1]!, /["'\\]/.test(value) ? UNKNOWN : expand(value, scope));
    return;
  }
  assign(rest, scope, (_name, value) => value ?? UNKNOWN);
}

/** `[name, value, literal?]` per assignment, or null when the line is not in the simple forms. */
function assignments(rest: string): Array<[string, string | undefined, boolean]> | null {
  const out: Array<[string, string | undefined, boolean]> = [];
  const s = rest.trim();
  ASSIGNMENT.lastIndex = 0;
  while (ASSIGNMENT.lastIndex < s.length) {
    const m = ASSIGNMENT.exec(s);
    if (m === null) return null;
    const [, name, dq, sq, bare] = m;
    const value = dq ?? sq ?? bare;
    out.push([name!, value, sq !== undefined]);
  }
  return out.length > 0 ? out : null;
}

/** A `--mount` value: `type` (default bind), `from`, `source`/`src` (default the root). */
function parseMount(value: string): { type: string; from: string | undefined; source: string } | null {
  if (/["']/.test(value)) return null;
  const fields = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    fields.set((eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase(), eq < 0 ? '' : part.slice(eq + 1));
  }
  return {
    type: fields.get('type') ?? 'bind',
    from: fields.get('from'),
    source: fields.get('source') ?? fields.get('src') ?? '.',
  };
}
