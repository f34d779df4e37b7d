import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
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
  'printf "username=%s\\npassword=%s\\n" "$WARMSTART_GIT_USERNAME" "$WARMSTART_GIT_PASSWORD"; }; f'

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

/** GitClient over the git binary. */
export class GitCli implements GitClient {
  constructor(private readonly gitPath: string = 'git') {}

  async version(): Promise<string> {
    const { stdout } = await execa(this.gitPath, ['--version'], { timeout: 10_000 });
    return stdout.trim();
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
    const result = await execa(this.gitPath, cloneArgs(url, dest, o), {
      env,
      extendEnv: true,
      reject: false,
      stdin: 'ignore',
      timeout: o.timeoutMs ?? 10 * 60_000,
      ...(o.signal ? { cancelSignal: o.signal } : {}),
    });
    if (result.exitCode !== 0) {
      let stderr = String(result.stderr ?? '').trim();
      if (o.token) stderr = stderr.split(o.token).join('***');
      throw new WarmstartError('GIT_CLONE_FAILED', `git clone of ${url} failed`, {
        detail: result.timedOut ? 'timed out' : stderr.slice(-2000) || `exit code ${result.exitCode}`,
      });
    }
  }
}
