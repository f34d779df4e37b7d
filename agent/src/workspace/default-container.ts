import type { DockerEngine } from '../docker/engine.js';
import { CONTAINER_GIT_DIR, type ContainerGitCredentials } from '../git/container-credentials.js';
import { describeError, WarmstartError } from '../errors.js';
import type { CredentialSource } from '../registry/credentials.js';
import { pullAuthFor } from '../registry/image-credentials.js';

/** Keeps the container alive and exits promptly on `docker stop`, with any POSIX shell. */
const KEEP_ALIVE = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

export const WORKSPACE_LABEL = 'warmstart.workspace';

/**
 * Pulls the image when it is not on this engine yet, with the node's
 * credentials for its registry when it has some (image-credentials.ts),
 * else anonymously.
 */
export async function ensureImage(engine: DockerEngine, image: string, credentialSources: readonly CredentialSource[] = []): Promise<void> {
  if ((await engine.imageId(image)) !== null) return;
  try {
    await engine.pullImage(image, await pullAuthFor(credentialSources, image));
  } catch (err) {
    throw new WarmstartError('DEFAULT_IMAGE_FAILED', `the default image ${image} is not available`, {
      cause: err,
      detail: describeError(err),
    });
  }
}

/**
 * Starts the default image with the workspace volume mounted: the lightweight
 * profile, and the recovery fallback when the repo's own config fails.
 */
export async function startDefaultContainer(
  engine: DockerEngine,
  o: {
    image: string;
    workspaceId: string;
    volume: string;
    workspaceFolder: string;
    profile: 'lightweight' | 'recovery';
    credentialSources?: readonly CredentialSource[];
    /** the job's own git credentials (agent/src/git/container-credentials.ts), as the dev container gets them */
    git?: Pick<ContainerGitCredentials, 'dir' | 'env'>;
  },
): Promise<string> {
  await ensureImage(engine, o.image, o.credentialSources);
  try {
    return await engine.runContainer({
      image: o.image,
      cmd: KEEP_ALIVE,
      labels: { [WORKSPACE_LABEL]: o.workspaceId, 'warmstart.profile': o.profile },
      volumes: { [o.volume]: o.workspaceFolder },
      workingDir: o.workspaceFolder,
      ...(o.git ? { readOnlyBinds: { [o.git.dir]: CONTAINER_GIT_DIR }, env: o.git.env } : {}),
    });
  } catch (err) {
    throw new WarmstartError('DEFAULT_IMAGE_FAILED', `could not start the default image ${o.image}`, {
      cause: err,
      detail: describeError(err),
    });
  }
}

/** Removes every container of the workspace (the volume stays). */
export async function removeWorkspaceContainers(engine: DockerEngine, workspaceId: string): Promise<number> {
  const containers = await engine.findContainers({ [WORKSPACE_LABEL]: workspaceId });
  for (const c of containers) await engine.removeContainer(c.id);
  return containers.length;
}
