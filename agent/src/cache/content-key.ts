import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { WarmstartError } from '../errors.js';
import { dockerfileSources } from './dockerfile-sources.js';
import { cleanPath, compileGlob, DockerIgnore, hasWildcard } from './dockerignore.js';
import { within } from '../devcontainer/within.js';
import { RepoPathError, RepoPaths, type RepoPath } from '../devcontainer/repo-path.js';
import { isMissing, unlessMissing } from '../util/best-effort.js';

/** What the exact-hit content key is computed from. */
export interface ContentKeyInput {
  /** A Dockerfile-based config (`kind: 'dockerfile'`); other kinds are refused. */
  discovered: DiscoveredConfig;
  /** The clone root: nothing outside it is read. */
  repoDir: string;
  /** The engine's platform, e.g. `linux/amd64`: the same inputs build a different image elsewhere. */
  platform: string;
  /** At most this many `.dockerignore` pattern tests (default {@link MAX_PATTERN_TESTS}). */
  maxPatternTests?: number;
}

/** A content key and, for logs and tests, what went into it. */
export interface ContentKey {
  /** sha256, 64 lowercase hex digits. */
  key: string;
  /**
   * Human-readable inputs, in order: `config`, `dockerfile:<path>`,
   * `dockerignore:<path>`, `context:<path> (all files: <why>)` when the whole
   * context had to be hashed, `file:<path>` (with ` (missing)`, ` (symlink)`
   * or ` (presence only)`), `feature:<id>`, `feature-dir:<path>`, `lockfile`,
   * `platform:<p>`. Paths are relative to the repo, `/`-separated.
   */
  inputs: string[];
}

/** Bumped whenever the description changes shape, so old keys can never match new ones. */
const DESCRIPTION_VERSION = 1;
/** No real Dockerfile or .dockerignore comes close; a larger one is not read into memory. */
const MAX_TEXT_BYTES = 1024 * 1024;
const HASH_CONCURRENCY = 8;
/**
 * Rules × files × path depth is the work of filtering a context; a repo
 * with a huge `.dockerignore` and many files could make it hours of CPU.
 * Far above any real repository (10,000 files × 50 rules × 5 levels is
 * 2.5 million); past it there is no key, so no exact hit: a cache miss.
 */
export const MAX_PATTERN_TESTS = 100_000_000;
/** Entries handled between turns of the event loop: the daemon keeps answering while a key is computed. */
const YIELD_EVERY = 256;

/** One hashed path: `[relative path, kind, sha256]`; kind is `x`/`-` (file, executable or not),
 * `l` (symlink: hash of its target string), `!` (missing or ignored), `g` (a `.git` directory,
 * by presence only), `?` (anything else). */
type Entry = [string, string, string];

const MISSING = Symbol('missing');
const GIT_DIR = Symbol('git');
type Pending = string | typeof MISSING | typeof GIT_DIR; // an absolute path to hash, or a marker

/**
 * Computes the exact-hit key of a Dockerfile-based config: sha256 over a
 * canonical, versioned description of everything the finished dev container
 * image is made from — the parsed config (comments, formatting and key order
 * do not count), the Dockerfile, the build-context files it copies (honouring
 * `.dockerignore`), the features (ids with versions and options, local
 * feature folders), `devcontainer-lock.json` and the platform.
 *
 * Throws INVALID_ARGUMENT for a config that is not Dockerfile-based or an
 * empty platform, and DEVCONTAINER_CONFIG_INVALID when a path (Dockerfile,
 * context, COPY source, local feature) leads out of the repository or the
 * Dockerfile cannot be read; the caller then has no exact key, which is a
 * cache miss, never a workspace failure. Not covered here: base images and
 * remote features behind a moving tag (`FROM node:20`, `:1`), which the
 * caller pins to their digests (agent/src/cache/pinned-inputs.ts), and
 * `${localEnv:...}` values, kept verbatim as in the config.
 */
export async function computeContentKey(input: ContentKeyInput): Promise<ContentKey> {
  const { discovered, platform } = input;
  if (discovered.kind !== 'dockerfile') {
    throw new WarmstartError('INVALID_ARGUMENT', `a content key needs a Dockerfile-based config, not ${discovered.kind}`);
  }
  if (typeof platform !== 'string' || platform.trim() === '') {
    throw new WarmstartError('INVALID_ARGUMENT', 'a content key needs the engine platform');
  }
  const { repo, config, configDir, build, legacy, dockerfile } = await locateDockerfile(discovered, input.repoDir);
  const contextValue = legacy ? config.context : build.context;
  const context =
    contextValue === undefined || contextValue === null || contextValue === ''
      ? await repo.resolve(path.dirname(dockerfile.abs), '.', 'build.context')
      : await repo.resolve(configDir, contextValue, 'build.context');
  if (dockerfile.real === null) throw invalid(`${dockerfile.rel} (build.dockerfile) does not exist`);
  if (context.real === null) throw invalid(`${context.rel} (build.context) does not exist`);

  const inputs = ['config', `dockerfile:${dockerfile.rel}`];
  const dockerfileBytes = await readBounded(dockerfile.real, dockerfile.rel);

  // BuildKit prefers `<Dockerfile>.dockerignore`; the classic builder, and
  // BuildKit too when the CLI builds its generated Dockerfile for features,
  // read only the context's. So with a Dockerfile-specific one, a file counts
  // unless both ignore it (a missing context one ignores nothing).
  const contextIgnore = await loadIgnore(repo, context.abs, '.dockerignore', inputs);
  const specificName = `${path.basename(dockerfile.abs)}.dockerignore`;
  const specificIgnore = await loadIgnore(repo, path.dirname(dockerfile.abs), specificName, inputs);
  const ignores = specificIgnore === null ? [contextIgnore ?? new DockerIgnore('')] : [contextIgnore ?? new DockerIgnore(''), specificIgnore];

  const files = new ContextFiles(context.real, ignores, input.maxPatternTests ?? MAX_PATTERN_TESTS);
  const { sources, wholeContext } = dockerfileSources(dockerfileBytes.toString('utf8'), isRecord(build.args) ? build.args : {});
  if (wholeContext !== null) {
    // The sources are not known before the build: every file of the context counts.
    inputs.push(`context:${context.rel} (all files: ${wholeContext})`);
    await files.addDir('');
  } else {
    for (const src of sources) await files.addSource(src);
  }
  const entries = await files.hash();
  const prefix = context.rel === '.' ? '' : `${context.rel}/`;
  for (const [rel, kind] of entries) inputs.push(`file:${prefix}${rel}${INPUT_NOTE[kind] ?? ''}`);

  const features = await describeFeatures(repo, configDir, config.features, inputs);
  const lock = await hashLockfile(repo, discovered.path);
  if (lock !== null) inputs.push('lockfile');
  inputs.push(`platform:${platform}`);

  const description = {
    v: DESCRIPTION_VERSION,
    config,
    dockerfile: { path: dockerfile.rel, sha256: sha256(dockerfileBytes) },
    context: context.rel,
    files: entries,
    features,
    lock,
    platform,
  };
  return { key: sha256(canonicalJson(description)), inputs };
}

/** The Dockerfile's text and the config's `build.args`: what its `FROM` lines are read from (agent/src/cache/dockerfile-bases.ts). */
export async function readDockerfile(discovered: DiscoveredConfig, repoDir: string): Promise<{ text: string; buildArgs: Record<string, unknown> }> {
  const { build, dockerfile } = await locateDockerfile(discovered, repoDir);
  if (dockerfile.real === null) throw invalid(`${dockerfile.rel} (build.dockerfile) does not exist`);
  const text = (await readBounded(dockerfile.real, dockerfile.rel)).toString('utf8');
  return { text, buildArgs: isRecord(build.args) ? build.args : {} };
}

async function locateDockerfile(discovered: DiscoveredConfig, repoDir: string) {
  const repo = new Repo(await RepoPaths.of(repoDir));
  const config = discovered.config;
  const configDir = path.dirname(path.resolve(discovered.path));
  const build = isRecord(config.build) ? config.build : {};
  // As the CLI (0.89.0) reads them: a legacy top-level `dockerFile` brings the
  // top-level `context`; the context defaults to the Dockerfile's directory.
  const legacy = 'dockerFile' in config;
  const dockerfile = await repo.resolve(configDir, legacy ? config.dockerFile : build.dockerfile, 'build.dockerfile');
  return { repo, config, configDir, build, legacy, dockerfile };
}

const INPUT_NOTE: Record<string, string> = { '!': ' (missing)', l: ' (symlink)', g: ' (presence only)' };

/**
 * JSON with object keys sorted at every depth (arrays keep their order), so
 * two parses of equivalent JSONC give the same text. Written out directly
 * rather than rebuilt as objects, so no key (not even `__proto__`) is special.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value, 0);
}

/**
 * Discovery refuses configs nested deeper than 64 levels; the description
 * wraps the config in two more. This bound keeps the recursion safe for any
 * caller, with a clear error instead of a stack overflow.
 */
const MAX_CANONICAL_DEPTH = 100;

function canonical(value: unknown, depth: number): string {
  if (depth > MAX_CANONICAL_DEPTH) throw invalid(`the config nests deeper than ${MAX_CANONICAL_DEPTH} levels`);
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v, depth + 1)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(record[k], depth + 1)}`).join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
  return JSON.stringify(value) ?? 'null';
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function invalid(message: string): WarmstartError {
  return new WarmstartError('DEVCONTAINER_CONFIG_INVALID', message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type Resolved = RepoPath;

/** The clone: every path read stays inside it (devcontainer/repo-path.ts, the rule discovery applies too). */
class Repo {
  constructor(private readonly paths: RepoPaths) {}

  get root(): string {
    return this.paths.root;
  }

  get realRoot(): string {
    return this.paths.realRoot;
  }

  async resolve(base: string, value: unknown, what: string): Promise<Resolved> {
    if (typeof value !== 'string' || value === '') throw invalid(`${what} must be a non-empty string`);
    try {
      return await this.paths.resolve(base, value);
    } catch (err) {
      if (err instanceof RepoPathError) throw invalid(`${what} ${JSON.stringify(value)} ${err.why}`);
      throw err;
    }
  }
}

async function readBounded(real: string, rel: string): Promise<Buffer> {
  const st = await lstat(real);
  if (!st.isFile()) throw invalid(`${rel} is not a regular file`);
  if (st.size > MAX_TEXT_BYTES) throw invalid(`${rel} is too large (${st.size} bytes)`);
  return readFile(real);
}

/** A `.dockerignore` file's rules, or null when there is none. */
async function loadIgnore(repo: Repo, dir: string, name: string, inputs: string[]): Promise<DockerIgnore | null> {
  const file = await repo.resolve(dir, name, name);
  if (file.real === null) return null;
  inputs.push(`dockerignore:${file.rel}`);
  return new DockerIgnore((await readBounded(file.real, file.rel)).toString('utf8'));
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * The files of one directory tree (a build context, a local feature) that
 * go into the key, collected by relative path and hashed at the end. Never
 * follows a symlink out of its root; `.git` directories count by presence
 * only, since a clone's `.git` differs from every other clone's even at the
 * same commit (index stat data, pack layout), which would make every
 * `COPY . .` key unique.
 */
class ContextFiles {
  private readonly pending = new Map<string, Pending>();
  private readonly prunes: boolean;
  private seen = 0;

  /** `root` is symlink-resolved. A path is ignored only when every rule set ignores it. */
  constructor(
    private readonly root: string,
    private readonly ignores: DockerIgnore[],
    private readonly maxPatternTests = MAX_PATTERN_TESTS,
  ) {
    // An ignored directory can be skipped whole only if no `!` rule could bring a file back.
    this.prunes = ignores.length > 0 && !ignores.some((i) => i.hasExceptions);
  }

  private ignored(rel: string): boolean {
    const out = this.ignores.length > 0 && this.ignores.every((i) => i.ignores(rel));
    const tests = this.ignores.reduce((n, i) => n + i.tests, 0);
    if (tests > this.maxPatternTests) {
      throw invalid(`the build context and its .dockerignore take more than ${this.maxPatternTests} pattern tests to filter`);
    }
    return out;
  }

  /** Lets other work run now and then during a long walk. */
  private async pace(): Promise<void> {
    if (++this.seen % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** One COPY/ADD source (or RUN bind mount): a path, a directory or a Go wildcard pattern. */
  async addSource(source: string): Promise<void> {
    // Sources are relative to the context even when written absolute.
    const rel = cleanPath(source.replace(/^\/+/, ''));
    if (rel === '..' || rel.startsWith('../')) {
      throw invalid(`the Dockerfile copies ${JSON.stringify(source)}, which is outside the build context`);
    }
    if (rel === '.') return this.addDir('');
    if (hasWildcard(rel)) return this.addPattern(rel);
    return this.addPath(rel);
  }

  /** A path named by the Dockerfile (or matched by its pattern): symlinks are followed inside the root. */
  private async addPath(rel: string): Promise<void> {
    const abs = path.join(this.root, rel);
    await this.checkParent(rel);
    const st = await lstat(abs).catch((err: unknown) => {
      if (isMissing(err)) return null;
      throw err;
    });
    if (st === null) return this.missing(rel);
    if (st.isDirectory()) return this.addDir(rel);
    // An ignored file is not in the context docker sends: the build cannot copy it.
    if (this.ignored(rel)) return this.missing(rel);
    this.pending.set(rel, abs);
    if (!st.isSymbolicLink()) return;
    // COPY follows a named symlink: its target's content counts too, if inside.
    const real = await unlessMissing(realpath(abs), null); // a dangling link: its own text counts (describeEntry)
    if (real !== null && within(this.root, real)) {
      const target = path.relative(this.root, real).split(path.sep).join('/');
      if (target === '') return this.addDir('');
      if (!this.pending.has(target)) await this.addPath(target);
    }
  }

  /** Every file below `rel` (`''`: the root), without following symlinks. */
  async addDir(rel: string): Promise<void> {
    if (path.posix.basename(rel) === '.git') {
      this.pending.set(rel, GIT_DIR);
      return;
    }
    const abs = rel === '' ? this.root : path.join(this.root, rel);
    const dirents = await readdir(abs, { withFileTypes: true }).catch((err: unknown) => {
      if (isMissing(err)) return null;
      throw err;
    });
    if (dirents === null) return this.missing(rel);
    for (const d of dirents) {
      await this.pace();
      const child = rel === '' ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) {
        if (!(this.prunes && this.ignored(child))) await this.addDir(child);
      } else if (!this.ignored(child)) {
        this.pending.set(child, path.join(abs, d.name));
      }
    }
  }

  /**
   * As BuildKit resolves a wildcard: the part before the first wildcard
   * segment is a directory, the rest is matched with Go's filepath.Match
   * against paths below it; a matching directory is copied whole. The walk
   * goes only as deep as the pattern has segments (`*` never matches `/`).
   */
  private async addPattern(rel: string): Promise<void> {
    const segments = rel.split('/');
    const first = segments.findIndex(hasWildcard);
    const base = segments.slice(0, first).join('/');
    const re = compileGlob(segments.slice(first).join('/'));
    if (re === null) return this.missing(rel); // Go refuses the pattern: the build copies nothing
    if (base !== '') await this.checkParent(`${base}/x`);
    const walk = async (dir: string, depth: number): Promise<void> => {
      const abs = path.join(this.root, base, dir);
      const dirents = await readdir(abs, { withFileTypes: true }).catch((err: unknown) => {
        if (isMissing(err)) return []; // no such directory: nothing matches
        throw err;
      });
      for (const d of dirents) {
        await this.pace();
        const below = dir === '' ? d.name : `${dir}/${d.name}`;
        const full = base === '' ? below : `${base}/${below}`;
        // The pattern is matched against the context docker sends, without ignored files.
        if (d.isDirectory() ? this.prunes && this.ignored(full) : this.ignored(full)) continue;
        if (re.test(below)) await this.addPath(full);
        else if (d.isDirectory() && depth > 1) await walk(below, depth - 1);
      }
    };
    await walk('', segments.length - first);
  }

  /** A symlinked parent directory must not lead out of the root. */
  private async checkParent(rel: string): Promise<void> {
    const parent = path.dirname(path.join(this.root, rel));
    const real = await realpath(parent).catch((err: unknown) => {
      if (isMissing(err)) return null;
      throw err;
    });
    if (real !== null && !within(this.root, real)) {
      throw invalid(`${path.posix.dirname(rel)} in the build context leads outside it through a symlink`);
    }
  }

  private missing(rel: string): void {
    if (!this.pending.has(rel)) this.pending.set(rel === '' ? '.' : rel, MISSING);
  }

  /** The collected entries, sorted by path (code units, not locale). */
  async hash(): Promise<Entry[]> {
    const list = [...this.pending].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return mapLimit(list, HASH_CONCURRENCY, ([rel, p]) => describeEntry(rel, p));
  }
}

async function describeEntry(rel: string, p: Pending): Promise<Entry> {
  if (p === MISSING) return [rel, '!', ''];
  if (p === GIT_DIR) return [rel, 'g', ''];
  const st = await unlessMissing(lstat(p), null);
  if (st === null) return [rel, '!', ''];
  // The link's own text: following it could leave the repo, and a target inside was added on its own.
  if (st.isSymbolicLink()) return [rel, 'l', sha256(await readlink(p))];
  // Only the executable bits: git keeps nothing else, and the umask varies between nodes.
  if (st.isFile()) return [rel, st.mode & 0o111 ? 'x' : '-', await hashFile(p)];
  return [rel, '?', ''];
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface FeatureDescription {
  id: string;
  options: unknown;
  /** A local feature's folder, every file. */
  files?: Entry[];
}

/**
 * `features` entries sorted by id (the CLI orders installs by dependencies
 * and id, not by the object's key order). A local feature (`./x`, `../x`,
 * relative to the config's folder as the CLI reads it) counts with its
 * folder's files; a remote one by its id, which carries the version.
 */
async function describeFeatures(repo: Repo, configDir: string, features: unknown, inputs: string[]): Promise<FeatureDescription[]> {
  if (!isRecord(features)) return [];
  const out: FeatureDescription[] = [];
  for (const id of Object.keys(features).sort()) {
    const feature: FeatureDescription = { id, options: features[id] ?? null };
    inputs.push(`feature:${id}`);
    if (id.startsWith('./') || id.startsWith('../')) {
      const dir = await repo.resolve(configDir, id, `feature ${id}`);
      if (dir.real === null) {
        feature.files = [['.', '!', '']]; // the CLI will fail on it; the key just records it
      } else {
        const files = new ContextFiles(dir.real, []);
        await files.addDir('');
        feature.files = await files.hash();
      }
      inputs.push(`feature-dir:${dir.rel}`);
    }
    out.push(feature);
  }
  return out;
}

/** The CLI's lockfile name: `.devcontainer-lock.json` next to a `.devcontainer.json`, else `devcontainer-lock.json`. */
async function hashLockfile(repo: Repo, configPath: string): Promise<string | null> {
  const name = path.basename(configPath).startsWith('.') ? '.devcontainer-lock.json' : 'devcontainer-lock.json';
  const lock = await repo.resolve(path.dirname(path.resolve(configPath)), name, 'lockfile');
  if (lock.real === null) return null;
  const st = await lstat(lock.real);
  if (!st.isFile()) throw invalid(`${lock.rel} is not a regular file`);
  return hashFile(lock.real);
}
