import { lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { WarmstartError } from '../errors.js';

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
 * Finds the repo's dev container config: `.devcontainer/<name>/devcontainer.json`
 * when a name is given (missing is an error: a named config never falls back),
 * else `.devcontainer/devcontainer.json`, else `.devcontainer.json`. Returns null
 * when there is none. Throws DEVCONTAINER_CONFIG_INVALID for a file that escapes
 * the repo through a symlink, is too large, is not JSONC, or cannot be built.
 */
export async function discoverConfig(
  repoDir: string,
  configName?: string | null,
): Promise<DiscoveredConfig | null> {
  const root = path.resolve(repoDir);
  if (configName !== undefined && configName !== null) {
    assertSingleSegment(configName);
    const rel = `.devcontainer/${configName}/devcontainer.json`;
    const found = await readCandidate(root, rel);
    if (found === null) {
      throw new WarmstartError(
        'DEVCONTAINER_CONFIG_INVALID',
        `config "${configName}" not found: expected ${rel} in the repository`,
      );
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
  const realRoot = await realpath(root);
  if (!isInside(realRoot, real)) {
    throw new WarmstartError(
      'DEVCONTAINER_CONFIG_INVALID',
      `${rel} points outside the repository`,
    );
  }

  const text = await readBounded(real, rel);
  const config = parseConfig(text, rel);
  return { path: abs, relativePath: rel, text, config, kind: kindOf(config, rel) };
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
    if (st.size > MAX_CONFIG_BYTES) {
      throw new WarmstartError(
        'DEVCONTAINER_CONFIG_INVALID',
        `${rel} is too large (${st.size} bytes; the limit is ${MAX_CONFIG_BYTES})`,
      );
    }
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}

function parseConfig(text: string, rel: string): Record<string, unknown> {
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
  const hint =
    'dockerfile' in config
      ? ' (a top-level "dockerfile" is not read by the devcontainers CLI: use "build": {"dockerfile": ...})'
      : '';
  throw new WarmstartError(
    'DEVCONTAINER_CONFIG_INVALID',
    `${rel} needs image, build.dockerfile or dockerComposeFile${hint}`,
  );
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
