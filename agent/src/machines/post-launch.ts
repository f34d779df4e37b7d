/**
 * The default post-launch hook of `machine up`: what a cached image cannot
 * carry because it differs per machine or per host, applied to every machine
 * after launch (hit or miss, so both end up alike).
 */
import { describeError, WarmstartError } from '../errors.js';
import type { LaunchFileContext, PostLaunchContext, PostLaunchHook } from './machine-up.js';

/** Where the hook records which machine this is and which cache key it came from. */
export const MACHINE_STATE_FILE = '/etc/warmstart/machine.json';

/** Options of {@link hostSpecificsHook}. */
export interface HostSpecificsOptions {
  /** the host user's git identity; set in the machine only when git is installed there */
  git?: { name: string; email: string };
  /** default {@link MACHINE_STATE_FILE} */
  stateFile?: string;
  /** default: the current time */
  now?: () => Date;
}

/** The content of the state file. */
export interface MachineStateFile {
  instance: string;
  key: string;
  cache: 'hit' | 'miss';
  backend: string;
  base: string;
  launchedAt: string;
}

/**
 * The state file arrives on stdin (unless `$1` is empty: the launch wrote it);
 * the git identity (when given) is set only where git is installed: a
 * machine without git has nothing to configure. One exec for both, since
 * every exec is a round trip to the backend.
 */
const APPLY = [
  '[ -z "$1" ] || { mkdir -p "$(dirname "$1")" && cat > "$1"; } || exit',
  '[ "$#" -ge 3 ] || exit 0',
  'command -v git >/dev/null 2>&1 || exit 0',
  'git config --global user.name "$2" && git config --global user.email "$3"',
].join('\n');

/** Builds the hook the CLI passes to machineUp. */
export function hostSpecificsHook(opts: HostSpecificsOptions = {}): PostLaunchHook {
  const stateFile = opts.stateFile ?? MACHINE_STATE_FILE;
  const now = opts.now ?? (() => new Date());
  const stateContent = (ctx: LaunchFileContext): string => {
    const state: MachineStateFile = {
      instance: ctx.instance,
      key: ctx.key,
      cache: ctx.cache,
      backend: ctx.backend.name,
      base: ctx.base,
      launchedAt: now().toISOString(),
    };
    return `${JSON.stringify(state, null, 2)}\n`;
  };
  const hook: PostLaunchHook = async (ctx: PostLaunchContext) => {
    const written = ctx.filesWritten.includes(stateFile);
    const needGit = opts.git !== undefined && ctx.gitInImage !== false;
    if (written && !needGit) return; // the launch wrote the state file and there is no identity to set
    const content = written ? '' : stateContent(ctx);
    // Nothing to run in the machine (no identity to set, or no git to set it for): one file write, no exec.
    if (!written && ctx.backend.writeFile && !needGit) {
      await ctx.backend.writeFile(ctx.instance, stateFile, Buffer.from(content), 0o644).catch((err: unknown) => {
        throw new WarmstartError('BACKEND_ERROR', `post-launch setup of ${ctx.instance} failed: ${describeError(err)}`, { cause: err });
      });
      return;
    }
    const git = opts.git ? [opts.git.name, opts.git.email] : [];
    const r = await ctx.backend.exec(ctx.instance, ['sh', '-c', APPLY, 'sh', written ? '' : stateFile, ...git], {
      input: content,
    });
    if (r.exitCode !== 0) {
      throw new WarmstartError('BACKEND_ERROR', `post-launch setup of ${ctx.instance} failed (exit ${r.exitCode})`, {
        detail: r.stderr.trim().slice(-2000) || undefined,
      });
    }
  };
  hook.launchFiles = (ctx) => [{ path: stateFile, content: stateContent(ctx) }];
  return hook;
}
