import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureRuntimeDir } from '../state/runtime-dir.js';

/** Where the helper directory appears inside the dev container. */
export const CONTAINER_GIT_DIR = '/run/warmstart-git';

/** What the override needs to give the container a git credential helper. */
export interface ContainerGitCredentials {
  /** `docker run` arguments: the helper directory mounted read-only, and git's env pointing at it (no secret in them) */
  runArgs: string[];
}

const HELPER = `#!/bin/sh
# git credential helper for this workspace: answers "get" with the token
# warmstart keeps in a runtime (tmpfs) directory, never in an image layer.
[ "$1" = get ] || exit 0
printf 'username=%s\\npassword=%s\\n' x-access-token "$(cat ${CONTAINER_GIT_DIR}/token)"
`;

/**
 * Writes the token and a helper script into `<runtimeDir>/workspaces/<id>/git`
 * and returns the bind mount and env that make git inside the container use
 * them. A bind mount is never part of `docker commit` or a pushed image; the
 * runtime dir is meant to be a tmpfs (systemd's RuntimeDirectory).
 */
export async function writeContainerGitCredentials(runtimeDir: string, workspaceId: string, token: string): Promise<ContainerGitCredentials> {
  await ensureRuntimeDir(runtimeDir); // 0700: other host users never reach the token
  const dir = join(runtimeDir, 'workspaces', workspaceId, 'git');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  // Readable inside the container for a non-root remoteUser.
  await writeFile(join(dir, 'token'), token, { mode: 0o644 });
  await writeFile(join(dir, 'git-credential-warmstart'), HELPER, { mode: 0o755 });
  return {
    runArgs: [
      '--mount', `type=bind,source=${dir},target=${CONTAINER_GIT_DIR},readonly`,
      '-e', 'GIT_CONFIG_COUNT=1',
      '-e', 'GIT_CONFIG_KEY_0=credential.helper',
      '-e', `GIT_CONFIG_VALUE_0=${CONTAINER_GIT_DIR}/git-credential-warmstart`,
    ],
  };
}

/** Removes the workspace's runtime secrets (on purge). */
export async function removeContainerGitCredentials(runtimeDir: string, workspaceId: string): Promise<void> {
  await rm(join(runtimeDir, 'workspaces', workspaceId), { recursive: true, force: true });
}
