import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DockerEngine } from '../docker/engine.js';
import { ensureRuntimeDir } from '../state/runtime-dir.js';

/** Where the helper directory appears inside the dev container. */
export const CONTAINER_GIT_DIR = '/run/warmstart-git';

/** What the override needs to give the container a git credential helper. */
export interface ContainerGitCredentials {
  /** `docker run` arguments: the helper directory mounted read-only, and git's env pointing at it (no secret in them) */
  runArgs: string[];
  /** the same for a container the agent starts itself (lightweight, recovery): the host directory to mount read-only, and the env */
  dir: string;
  env: Record<string, string>;
}

/** host[:port] as repository.ts checks it: nothing a shell would read as code. */
const SAFE_HOST = /^[A-Za-z0-9.:[\]-]+$/;

/**
 * git credential helper for this workspace: answers "get" with the token
 * warmstart keeps in a runtime (tmpfs) directory, never in an image layer,
 * and only when git asks about the repository's own host.
 */
function helperScript(host: string | null): string {
  const bound = host !== null && SAFE_HOST.test(host) ? host.toLowerCase() : '';
  return `#!/bin/sh
[ "$1" = get ] || exit 0
h=
while IFS= read -r l; do case "$l" in host=*) h="\${l#host=}";; esac; done
[ -n '${bound}' ] && [ "$(printf %s "$h" | tr A-Z a-z)" = '${bound}' ] || exit 0
printf 'username=%s\\npassword=%s\\n' x-access-token "$(cat ${CONTAINER_GIT_DIR}/token)"
`;
}

/**
 * Writes a job's own token and a helper script into
 * `<runtimeDir>/workspaces/<id>/git` and returns the bind mount and env that
 * make git inside the container use them. Only a token the job brought comes
 * here (plan.ts `gitTokenSource`): the node's token never enters a container.
 * A bind mount is never part of `docker commit` or a pushed image; the
 * runtime dir is meant to be a tmpfs (systemd's RuntimeDirectory).
 */
export async function writeContainerGitCredentials(
  runtimeDir: string,
  workspaceId: string,
  token: string,
  host: string | null = null,
): Promise<ContainerGitCredentials> {
  await ensureRuntimeDir(runtimeDir); // 0700: other host users never reach the token
  const dir = join(runtimeDir, 'workspaces', workspaceId, 'git');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  // Root's only until `up` tells us the remote user (shareTokenWith). A file
  // from an earlier run is replaced, not rewritten: it may be another user's.
  await rm(join(dir, 'token'), { force: true });
  await writeFile(join(dir, 'token'), token, { mode: 0o600, flag: 'wx' });
  await rm(join(dir, 'git-credential-warmstart'), { force: true });
  await writeFile(join(dir, 'git-credential-warmstart'), helperScript(host), { mode: 0o755 });
  const env = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'credential.helper', GIT_CONFIG_VALUE_0: `${CONTAINER_GIT_DIR}/git-credential-warmstart` };
  return {
    runArgs: [
      '--mount',
      `type=bind,source=${dir},target=${CONTAINER_GIT_DIR},readonly`,
      ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ],
    dir,
    env,
  };
}

/**
 * Makes the token file readable by the container's remote user and nobody
 * else: owned by the uid `id -u <remoteUser>` finds in the container (with
 * no user named, the user the container runs as), mode 0600 (the bind mount
 * shares the host file, so a host chown is what the container sees). Returns
 * a note when that uid cannot be found: the file is then left readable by
 * all, as a non-root user could not use it otherwise.
 */
export async function shareTokenWith(
  engine: Pick<DockerEngine, 'execInContainer'>,
  containerId: string,
  runtimeDir: string,
  workspaceId: string,
  remoteUser: string | undefined,
): Promise<string | null> {
  const file = join(runtimeDir, 'workspaces', workspaceId, 'git', 'token');
  let uid: number | null = null;
  const argv = remoteUser ? ['id', '-u', remoteUser] : ['id', '-u'];
  let why: string;
  try {
    const out = await engine.execInContainer(containerId, argv);
    const text = out.stdout.trim();
    if (out.exitCode === 0 && /^[0-9]+$/.test(text)) uid = Number(text);
    why = `${argv.join(' ')} exited ${out.exitCode}${out.exitCode === 0 ? ' without a uid' : ''}`;
  } catch (err) {
    why = `${argv.join(' ')} could not run: ${(err as Error).message}`;
  }
  if (uid !== null) {
    try {
      await chown(file, uid, -1);
      await chmod(file, 0o600);
      return null;
    } catch (err) {
      why = `chown to uid ${uid} failed: ${(err as Error).message}`;
    }
  }
  await chmod(file, 0o644);
  return `git token in the container is readable by every user there: ${why}`;
}

/** Removes the workspace's runtime secrets (on purge). */
export async function removeContainerGitCredentials(runtimeDir: string, workspaceId: string): Promise<void> {
  await rm(join(runtimeDir, 'workspaces', workspaceId), { recursive: true, force: true });
}
