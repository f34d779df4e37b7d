/**
 * The host user's git identity, for the post-launch hook: machines started
 * from a shared cached image should commit as whoever runs `machine up`.
 * Read with node:child_process, not execa: `serve` reads it at start-up, and
 * execa would be loaded for these two calls alone (test/bench/README.md
 * "Where serve's memory goes").
 */
import { execFile } from 'node:child_process';

/** Runs `git config --get <key>` on the host; its value, or null when unset or git is missing. */
export type GitConfigReader = (key: string) => Promise<string | null>;

const readGitConfig: GitConfigReader = (key) =>
  new Promise((resolve) => {
    // Unset (exit 1), no git (ENOENT) or anything else: no value.
    execFile('git', ['config', '--get', key], { timeout: 10_000 }, (err, stdout) => {
      const value = err ? '' : stdout.trim();
      resolve(value === '' ? null : value);
    });
  });

/** `{name, email}` from the host's git config, or null unless both are set. */
export async function hostGitIdentity(read: GitConfigReader = readGitConfig): Promise<{ name: string; email: string } | null> {
  const [name, email] = await Promise.all([read('user.name'), read('user.email')]);
  return name && email ? { name, email } : null;
}
