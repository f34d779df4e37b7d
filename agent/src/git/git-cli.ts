import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { WarmstartError } from '../errors.js';
import type { CloneOptions, GitClient } from './git.js';

/**
 * The credential helper reads the token from the git process's environment,
 * so the token is in neither argv, the URL, nor `.git/config` (`-c` settings
 * live only for this one command). It answers only when git asks about the
 * host the token is for (git's `host=` line carries the port too), so a
 * redirect or submodule on another host never receives it.
 */
const HELPER =
  '!f() { test "$1" = get || exit 0; h=; while IFS= read -r l; do case "$l" in host=*) h="${l#host=}";; esac; done; ' +
  'h=$(printf %s "$h" | tr A-Z a-z); test -n "$WARMSTART_GIT_HOST" && test "$h" = "$WARMSTART_GIT_HOST" || exit 0; ' +
  'printf "username=%s\\npassword=%s\\n" "$WARMSTART_GIT_USERNAME" "$WARMSTART_GIT_PASSWORD"; }; f';

/** Builds the clone argv; exported so tests can check it exactly. */
export function cloneArgs(url: string, dest: string, o: CloneOptions): string[] {
  const depth = o.depth ?? 1;
  // git ignores --depth for plain local paths; a file:// URL honours it.
  const source = depth > 0 && isAbsolute(url) ? pathToFileURL(url).href : url;
  const args = ['-c', 'credential.helper=', '-c', `credential.helper=${HELPER}`, '-c', 'core.hooksPath=/dev/null', 'clone', '--quiet'];
  if (depth > 0) args.push('--depth', String(depth));
  args.push('--', source, dest);
  return args;
}

interface GitRun {
  /** null when git was killed (timeout, cancel) */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs git with stdin closed and its output kept (at most 64 KiB of each
 * stream's tail). node:child_process rather than execa: the clone starts a
 * job, and execa's import would hold it up (agent/src/devcontainer/load-execa.ts).
 */
function runGit(file: string, args: string[], o: { env?: Record<string, string>; timeoutMs: number; signal?: AbortSignal }): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    const keep = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
      out[which] = (out[which] + chunk.toString('utf8')).slice(-65_536);
    };
    child.stdout.on('data', keep('stdout'));
    child.stderr.on('data', keep('stderr'));
    let timedOut = false;
    const kill = (): void => void child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, o.timeoutMs);
    o.signal?.addEventListener('abort', kill, { once: true });
    if (o.signal?.aborted) kill();
    const settle = (): void => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', kill);
    };
    child.on('error', (err) => {
      settle();
      reject(err);
    });
    child.on('close', (code) => {
      settle();
      resolve({ code, ...out, timedOut });
    });
  });
}

/** GitClient over the git binary. */
export class GitCli implements GitClient {
  constructor(private readonly gitPath: string = 'git') {}

  async version(): Promise<string> {
    const r = await runGit(this.gitPath, ['--version'], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${this.gitPath} --version failed: ${r.timedOut ? 'timed out' : r.stderr.trim() || `exit code ${r.code}`}`);
    return r.stdout.trim();
  }

  async clone(url: string, dest: string, o: CloneOptions = {}): Promise<void> {
    const env: Record<string, string> = {
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '/bin/false',
      SSH_ASKPASS: '/bin/false',
      WARMSTART_GIT_USERNAME: o.username ?? 'x-access-token',
      WARMSTART_GIT_PASSWORD: o.token ?? '',
      WARMSTART_GIT_HOST: o.token && o.tokenHost ? o.tokenHost.toLowerCase() : '',
    };
    const result = await runGit(this.gitPath, cloneArgs(url, dest, o), {
      env,
      timeoutMs: o.timeoutMs ?? 10 * 60_000,
      ...(o.signal ? { signal: o.signal } : {}),
    }).catch((err: unknown) => {
      throw new WarmstartError('GIT_CLONE_FAILED', `git clone of ${url} failed`, { detail: `git did not run: ${(err as Error).message}` });
    });
    if (result.code !== 0) {
      let stderr = result.stderr.trim();
      if (o.token) stderr = stderr.split(o.token).join('***');
      const why = result.timedOut ? 'timed out' : o.signal?.aborted ? 'cancelled' : stderr.slice(-2000) || `exit code ${result.code}`;
      throw new WarmstartError('GIT_CLONE_FAILED', `git clone of ${url} failed`, { detail: why });
    }
  }
}
