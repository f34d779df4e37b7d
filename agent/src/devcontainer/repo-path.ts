/**
 * The one rule for a path a repository's config names (a Dockerfile, a build
 * context, a compose file, a local feature, a lockfile): it must stay inside
 * the clone, written and after symlinks. Discovery (discover.ts) refuses a
 * config that breaks it before anything runs; the content key
 * (cache/content-key.ts) reads only what passes it. Both use this module, so
 * a path one accepts the other accepts too.
 *
 * - `${localWorkspaceFolder}` and `${localWorkspaceFolderBasename}` are
 *   substituted as the devcontainers CLI does; any other variable (an env
 *   var of the agent's host) could point anywhere and is refused.
 * - The path, resolved against its base, must be the root or below it.
 * - The nearest part of it that exists, symlinks resolved, must be inside
 *   the real root too; a symlink that leads nowhere is refused.
 * - A path that does not exist passes (nothing can be read through it; the
 *   CLI reports it).
 */
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { within } from './within.js';

/** Why a path is refused, in words that follow the path in a message. */
export class RepoPathError extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'RepoPathError';
  }
}

export interface RepoPath {
  /** absolute, as written (symlinks not resolved) */
  abs: string;
  /** relative to the root, `/`-separated, `.` for the root */
  rel: string;
  /** symlinks resolved, or null when nothing is there */
  real: string | null;
}

export class RepoPaths {
  private constructor(
    /** absolute */
    readonly root: string,
    /** `root` with symlinks resolved */
    readonly realRoot: string,
  ) {}

  static async of(root: string): Promise<RepoPaths> {
    const abs = path.resolve(root);
    return new RepoPaths(abs, await realpath(abs));
  }

  /** Resolves `value` against `base` (a folder inside the root); throws RepoPathError when it leaves the repository. */
  async resolve(base: string, value: string): Promise<RepoPath> {
    const substituted = value
      .replaceAll('${localWorkspaceFolder}', this.root)
      .replaceAll('${localWorkspaceFolderBasename}', path.basename(this.root));
    if (substituted.includes('${')) throw new RepoPathError('uses a variable other than ${localWorkspaceFolder}: a path must stay in the repository');
    const abs = path.resolve(base, substituted);
    if (!within(this.root, abs)) throw new RepoPathError('points outside the repository');
    const rel = path.relative(this.root, abs).split(path.sep).join('/') || '.';
    for (let probe = abs; ; probe = path.dirname(probe)) {
      if (!(await present(probe))) {
        if (probe === this.root) return { abs, rel, real: null };
        continue;
      }
      let real: string;
      try {
        real = await realpath(probe);
      } catch (err) {
        if (!notFound(err)) throw new RepoPathError(`cannot be resolved (${errno(err) ?? 'error'})`);
        throw new RepoPathError('is a symlink that leads nowhere');
      }
      if (!within(this.realRoot, real)) throw new RepoPathError('leads outside the repository through a symlink');
      return { abs, rel, real: probe === abs ? real : null };
    }
  }
}

/** lstat, not stat: a dangling symlink is there (and is refused by the caller's realpath). */
async function present(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if (notFound(err)) return false;
    throw new RepoPathError(`cannot be resolved (${errno(err) ?? 'error'})`);
  }
}

function errno(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function notFound(err: unknown): boolean {
  const code = errno(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}
