import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DiscoveredConfig } from './discover.js';

/** What the prepare pipeline changes in a repo's dev container config. */
export interface OverrideInput {
  discovered: DiscoveredConfig;
  /** Cache images that were actually pulled (possibly none), most useful first. */
  cacheFrom: string[];
  /** CLI mount syntax, e.g. `source=warmstart-ws-abc,target=/workspaces/app,type=volume`. */
  workspaceMount: string;
  /** Where the workspace is inside the container, e.g. `/workspaces/app`. */
  workspaceFolder: string;
  /**
   * `docker run` arguments appended after the repo's own `runArgs` (e.g. the
   * credential helper's mount and env). Not `mounts`/`containerEnv`: the CLI
   * copies those into the image's `devcontainer.metadata` label, and a
   * workspace's host paths must not travel with a cache image to other nodes.
   */
  runArgs?: string[];
  /** docker build options appended to the repo's `build.options` (Dockerfile configs only). */
  buildOptions?: string[];
  /** top-level properties set over the repo's (e.g. `updateRemoteUserUID`) */
  settings?: Record<string, unknown>;
}

/** The config to hand to `devcontainer up --override-config`, and what happened to the cache. */
export interface OverrideResult {
  /** The repo's whole config with our changes. */
  config: Record<string, unknown>;
  /** Our cache images that went into `build.cacheFrom` (the repo's own are not listed). */
  cacheFromApplied: string[];
  /** Why no cache image was applied; null when some were. */
  cacheNote: string | null;
}

/** File name of the override written next to the job's other files. */
export const OVERRIDE_FILE_NAME = 'devcontainer.override.json';

/**
 * Builds the override config. `--override-config` replaces the repo's config
 * instead of merging with it (a file holding only `build.cacheFrom` fails), so
 * the result is the repo's whole parsed config with our changes.
 *
 * Relative paths (`build.dockerfile`, `build.context`, legacy `dockerFile` and
 * `context`, local features `./x`) are left as written: the CLI resolves them
 * against the file passed with `--config` (the repo's config), not against the
 * override file's location, so the caller must pass `discovered.path` there.
 * Variables such as `${localEnv:HOME}` are not substituted either: the CLI
 * substitutes them when it reads the override.
 */
export function buildOverride(input: OverrideInput): OverrideResult {
  const { discovered } = input;
  const config = structuredClone(discovered.config);

  const cache = applyCacheFrom(config, discovered.kind, input.cacheFrom);

  // For Compose configs the CLI ignores workspaceMount (the workspace volume
  // must come from the compose file); it is set anyway so every override has
  // the same shape, and workspaceFolder is still honoured.
  config.workspaceMount = input.workspaceMount;
  config.workspaceFolder = input.workspaceFolder;

  if (input.runArgs !== undefined && input.runArgs.length > 0) {
    config.runArgs = [...asStrings(config.runArgs), ...input.runArgs];
  }

  Object.assign(config, input.settings);
  if (discovered.kind === 'dockerfile' && input.buildOptions?.length) {
    const build = isRecord(config.build) ? config.build : {};
    const own = Array.isArray(build.options) ? build.options.filter((o): o is string => typeof o === 'string') : [];
    build.options = [...own, ...input.buildOptions.filter((o) => !own.includes(o))];
    config.build = build;
  }

  return { config, ...cache };
}

/** Writes the override as `devcontainer.override.json` (mode 0600) in `dir`; returns its path. */
export async function writeOverrideFile(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, OVERRIDE_FILE_NAME);
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // `mode` only applies when the file is created; a rewrite must not keep looser bits.
  await chmod(file, 0o600);
  return file;
}

function applyCacheFrom(config: Record<string, unknown>, kind: DiscoveredConfig['kind'], ours: string[]): Omit<OverrideResult, 'config'> {
  if (kind === 'image') {
    return { cacheFromApplied: [], cacheNote: 'image-based config: nothing is built, so there is no layer cache to use' };
  }
  if (kind === 'compose') {
    return {
      cacheFromApplied: [],
      cacheNote: 'compose-based config: images are built from the compose file, which does not read build.cacheFrom',
    };
  }
  const applied = dedupe(ours);
  if (applied.length === 0) {
    return { cacheFromApplied: [], cacheNote: 'no cache image was available; build.cacheFrom left as the repo has it' };
  }
  // Legacy configs keep top-level `dockerFile` and `context`: the CLI (0.89.0)
  // picks `dockerFile` over `build.dockerfile` and reads `context` from the top
  // level in that case, but it reads `build.cacheFrom` for both shapes. So the
  // cache goes under `build` and nothing else moves (verified with `up`).
  const build = isRecord(config.build) ? config.build : {};
  build.cacheFrom = dedupe([...applied, ...asStrings(build.cacheFrom)]);
  config.build = build;
  return { cacheFromApplied: applied, cacheNote: null };
}

/** The CLI takes a string or an array of strings; anything else it cannot pass on to docker. */
function asStrings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** Keeps the first occurrence, so our refs stay ahead of the repo's; drops empty refs. */
function dedupe(list: string[]): string[] {
  return [...new Set(list.filter((ref) => ref.length > 0))];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
