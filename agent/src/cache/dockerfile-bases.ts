/**
 * Reads a Dockerfile for the images its stages start from: the `FROM` of
 * every stage, after build-arg substitution, as the build will pull them.
 * A tag can move (`FROM node:20`), so the exact-hit key pins each one to
 * the digest it resolves to now (agent/src/cache/pinned-inputs.ts).
 */
import { instructions, splitFlags } from './dockerfile-sources.js';

/** The base images of a Dockerfile, or why they cannot be known before the build. */
export interface DockerfileBases {
  /** Image references as written once variables are expanded, in order, without duplicates. */
  refs: string[];
  /** Set when some `FROM` cannot be read with certainty: the key then cannot be pinned. */
  unknown: string | null;
}

const UNKNOWN = Symbol('unknown');
type Value = string | typeof UNKNOWN;

// `$V`, `${V}`, `${V:-word}`, `${V:+word}`: the forms Docker's own docs list for FROM.
const VAR = /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}$]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;
const ARG_DECL = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/;

/**
 * Lists the images `text` builds on. Only the ARGs declared before the first
 * FROM are visible to a FROM line; `buildArgs` (the config's `build.args`)
 * override their defaults, and a value holding a devcontainer variable
 * (`${localEnv:X}`) is not known here. `scratch` and the names of earlier
 * stages (`AS name`, compared case-insensitively as Docker does) are not
 * images. A reference already pinned by `@sha256:` is listed as written.
 */
export function dockerfileBases(text: string, buildArgs: Readonly<Record<string, unknown>> = {}): DockerfileBases {
  const globals = new Map<string, Value>();
  const stages = new Set<string>();
  const refs: string[] = [];
  let unknown: string | null = null;
  let seenFrom = false;
  const buildArg = (name: string): Value | undefined => {
    if (!Object.hasOwn(buildArgs, name)) return undefined;
    const v = buildArgs[name];
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return typeof v === 'string' && !v.includes('${') ? v : UNKNOWN;
  };

  for (const { keyword, rest } of instructions(text)) {
    if (keyword === 'ARG' && !seenFrom) {
      for (const word of rest.trim().split(/\s+/)) {
        const m = ARG_DECL.exec(word);
        if (m === null) {
          unknown ??= `ARG ${rest.trim()} before the first FROM cannot be read`;
          continue;
        }
        const [, name, raw] = m;
        const given = buildArg(name!);
        const value = raw === undefined ? undefined : argDefault(raw, globals);
        // Declared without a default and not given: Docker expands it to nothing.
        globals.set(name!, given ?? value ?? '');
      }
      continue;
    }
    if (keyword !== 'FROM') continue;
    seenFrom = true;
    const words = splitFlags(rest)
      .args.split(/\s+/)
      .filter((w) => w !== '');
    const [raw, as, name] = words;
    if (raw === undefined) {
      unknown ??= 'a FROM line names no image';
      continue;
    }
    const image = /["'\\`]/.test(raw) ? UNKNOWN : expand(raw, globals);
    if (image === UNKNOWN || image === '') {
      unknown ??= `FROM ${raw} depends on a value known only at build time`;
    } else if (image.toLowerCase() !== 'scratch' && !stages.has(image.toLowerCase())) {
      refs.push(image);
    }
    if (as?.toLowerCase() === 'as' && name !== undefined) stages.add(name.toLowerCase());
  }
  return { refs: [...new Set(refs)], unknown };
}

/** An ARG default: plain or wholly quoted (single quotes keep `$` literal); other quoting is not modelled. */
function argDefault(raw: string, vars: ReadonlyMap<string, Value>): Value {
  const single = /^'([^'\\]*)'$/.exec(raw);
  if (single) return single[1]!;
  const double = /^"([^"\\]*)"$/.exec(raw);
  const text = double ? double[1]! : raw;
  return /["'\\]/.test(text) ? UNKNOWN : expand(text, vars);
}

/** Expands the supported variable forms; any other `$` use, or an unknown value, gives UNKNOWN. */
function expand(template: string, vars: ReadonlyMap<string, Value>): Value {
  if (!template.includes('$')) return template;
  if (template.replace(VAR, '').includes('$')) return UNKNOWN;
  let unknown = false;
  const out = template.replace(VAR, (_m, braced: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    const v = vars.get((braced ?? bare)!) ?? '';
    if (v === UNKNOWN) {
      unknown = true;
      return '';
    }
    if (op === ':-') return v === '' ? (word ?? '') : v;
    if (op === ':+') return v === '' ? '' : (word ?? '');
    return v;
  });
  return unknown ? UNKNOWN : out;
}
