/**
 * The host user's git identity, for the post-launch hook: machines started
 * from a shared cached image should commit as whoever runs `machine up`.
 */
import { execa } from 'execa';

/** Runs `git config --get <key>` on the host; its value, or null when unset or git is missing. */
export type GitConfigReader = (key: string) => Promise<string | null>;

const readGitConfig: GitConfigReader = async (key) => {
  const r = await execa('git', ['config', '--get', key], { reject: false });
  const value = r.exitCode === 0 ? String(r.stdout).trim() : '';
  return value === '' ? null : value;
};

/** `{name, email}` from the host's git config, or null unless both are set. */
export async function hostGitIdentity(read: GitConfigReader = readGitConfig): Promise<{ name: string; email: string } | null> {
  const [name, email] = await Promise.all([read('user.name'), read('user.email')]);
  return name && email ? { name, email } : null;
}
