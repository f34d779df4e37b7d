import { lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { WarmstartError } from '../errors.js';
import { RepoPathError, RepoPaths } from './repo-path.js';

/** How the dev container is made: built from a Dockerfile, run from an image, or by Compose. */
export type ConfigKind = 'dockerfile' | 'image' | 'compose';

/** A repository's devcontainer.json, found, read and parsed. */
export interface DiscoveredConfig {
  /**
   * Absolute path as found in the repo (not symlink-resolved): the CLI resolves
   * relative paths against the directory of the path it is given with `--config`,
   * so this must be the path the CLI itself would have found.
   */
  path: string;
  /** The same path relative to the repo, with `/` separators, for messages and events. */
  relativePath: string;
  /** The file's text as read (JSONC). */
  text: string;
  /** The parsed config; variables such as `${localEnv:X}` are left verbatim. */
  config: Record<string, unknown>;
  kind: ConfigKind;
}

/** devcontainer.json files larger than this are refused: no real config comes close. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/**
 * Deeper nesting is refused before parsing: the JSONC parser, structuredClone
 * and every walk over the config recurse, and a few kilobytes of `[[[[` would
 * overflow the stack. Real configs stay under ten levels.
 */
export const MAX_CONFIG_DEPTH = 64;

/**
 * Finds the repo's dev container config: `.devcontainer/<name>/devcontainer.json`
 * when a name is given (missing is an error: a named config never falls back),
 * else `.devcontainer/devcontainer.json`, else `.devcontainer.json`. Returns null
 * when there is none. Throws DEVCONTAINER_CONFIG_INVALID for a file that escapes
 * the repo through a symlink, is too large or too deeply nested, is not JSONC,
 * cannot be built, or names a path (Dockerfile, context, compose file, local
 * feature) outside the repository.
 */
export async function discoverConfig(repoDir: string, configName?: string | null): Promise<DiscoveredConfig | null> {
  const root = path.resolve(repoDir);
  if (configName !== undefined && configName !== null) {
    assertSingleSegment(configName);
    const rel = `.devcontainer/${configName}/devcontainer.json`;
    const found = await readCandidate(root, rel);
    if (found === null) {
      throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `config "${configName}" not found: expected ${rel} in the repository`);
    }
    return found;
  }
  for (const rel of ['.devcontainer/devcontainer.json', '.devcontainer.json']) {
    const found = await readCandidate(root, rel);
    if (found !== null) return found;
  }
  return null;
}

/** Input validation rejects such names earlier; this keeps discovery safe on its own. */
function assertSingleSegment(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new WarmstartError('INVALID_CONFIG_NAME', `invalid config name: ${JSON.stringify(name)}`);
  }
}

async function readCandidate(root: string, rel: string): Promise<DiscoveredConfig | null> {
  const abs = path.join(root, ...rel.split('/'));
  // lstat, not stat: a dangling symlink exists and must be reported, not skipped.
  if (!(await exists(abs))) return null;

  let real: string;
  try {
    real = await realpath(abs);
  } catch (cause) {
    throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} cannot be resolved`, {
      cause,
      detail: errnoOf(cause),
    });
  }
  const paths = await RepoPaths.of(root);
  if (!isInside(paths.realRoot, real)) {
    throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} points outside the repository`);
  }

  const text = await readBounded(real, rel);
  const config = parseConfig(text, rel);
  const kind = kindOf(config, rel);
  await checkPaths(config, { paths, configDir: path.dirname(path.resolve(abs)), rel });
  return { path: abs, relativePath: rel, text, config, kind };
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: `.devcontainer` is a file, so nothing can be inside it.
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** Size is checked on the open handle, so the file read is the file measured. */
async function readBounded(file: string, rel: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} is not a regular file`);
    }
    // Checked before reading: a huge file is never loaded into memory.
    if (st.size > MAX_CONFIG_BYTES) {
      throw new WarmstartError(
        'DEVCONTAINER_CONFIG_INVALID',
        `${rel} is too large: ${st.size} bytes, the limit is 1 MiB (${MAX_CONFIG_BYTES} bytes)`,
      );
    }
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}

function parseConfig(text: string, rel: string): Record<string, unknown> {
  const deep = tooDeepAt(text, MAX_CONFIG_DEPTH);
  if (deep >= 0) {
    throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} nests objects or arrays deeper than ${MAX_CONFIG_DEPTH} levels`, {
      detail: `${rel}:${lineCol(text, deep)}: level ${MAX_CONFIG_DEPTH + 1} opens here`,
    });
  }
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const where = errors
      .slice(0, 3)
      .map((e) => `${rel}:${lineCol(text, e.offset)}: ${printParseErrorCode(e.error)} (offset ${e.offset})`)
      .join('; ');
    throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} is not valid JSON(C)`, {
      detail: where,
    });
  }
  if (!isRecord(value)) {
    throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} must hold a JSON object`, {
      detail: `${rel}:1:1: root is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`,
    });
  }
  return value;
}

/**
 * The offset of the first `{` or `[` that opens level `limit + 1`, or -1. A
 * flat scan that skips strings and comments as jsonc-parser's scanner does
 * (a string also ends at a line break), so the parser never goes deeper.
 */
export function tooDeepAt(text: string, limit: number): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x5c /* \ */) i++;
        else if (c === 0x22 || c === 0x0a || c === 0x0d) break;
      }
    } else if (ch === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) {
      while (i < text.length && text.charCodeAt(i) !== 0x0a && text.charCodeAt(i) !== 0x0d) i++;
    } else if (ch === 0x2f && text.charCodeAt(i + 1) === 0x2a /* * */) {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (++depth > limit) return i;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      if (depth > 0) depth--;
    }
  }
  return -1;
}

interface PathContext {
  /** the clone's path rule (repo-path.ts) */
  paths: RepoPaths;
  /** the config file's directory, not symlink-resolved: the CLI resolves relative paths against it */
  configDir: string;
  rel: string;
}

/**
 * The config's paths that the devcontainers CLI and docker read on the host
 * must stay in the repository, as written and after symlinks: a build
 * context outside it would send the host's files to the build, a Dockerfile
 * outside it would echo them in the build log. A path that does not exist
 * is left to the CLI to report (nothing can be read through it).
 */
async function checkPaths(config: Record<string, unknown>, ctx: PathContext): Promise<void> {
  const build = isRecord(config.build) ? config.build : {};
  const fields: Array<[string, unknown]> = [
    ['build.dockerfile', build.dockerfile],
    ['build.context', build.context],
    ['dockerFile', config.dockerFile],
    ['context', config.context],
  ];
  const compose = config.dockerComposeFile;
  if (Array.isArray(compose)) compose.forEach((f, i) => fields.push([`dockerComposeFile[${i}]`, f]));
  else fields.push(['dockerComposeFile', compose]);
  if (isRecord(config.features)) {
    for (const id of Object.keys(config.features)) {
      if (id.startsWith('./') || id.startsWith('../')) fields.push([`features["${id}"]`, id]);
    }
  }
  for (const [field, value] of fields) {
    if (typeof value === 'string' && value !== '') await checkPath(field, value, ctx);
  }
}

async function checkPath(field: string, value: string, ctx: PathContext): Promise<void> {
  const shown = JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  try {
    await ctx.paths.resolve(ctx.configDir, value);
  } catch (err) {
    if (err instanceof RepoPathError) throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${ctx.rel}: ${field} ${shown} ${err.why}`);
    throw err;
  }
}

/**
 * Same order as the devcontainers CLI (0.89.0): a Dockerfile wins over `image`,
 * and both win over `dockerComposeFile`. The CLI reads the legacy top-level
 * `dockerFile` (camel case) but not a top-level lowercase `dockerfile`; such a
 * config fails in the CLI, so it is refused here with a hint instead.
 */
function kindOf(config: Record<string, unknown>, rel: string): ConfigKind {
  const build = config.build;
  if ('dockerFile' in config || (isRecord(build) && 'dockerfile' in build)) return 'dockerfile';
  if ('image' in config) return 'image';
  if ('dockerComposeFile' in config) return 'compose';
  const hint = 'dockerfile' in config ? ' (a top-level "dockerfile" is not read by the devcontainers CLI: use "build": {"dockerfile": ...})' : '';
  throw new WarmstartError('DEVCONTAINER_CONFIG_INVALID', `${rel} needs image, build.dockerfile or dockerComposeFile${hint}`);
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `${line}:${col}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
