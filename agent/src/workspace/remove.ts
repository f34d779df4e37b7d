import type { DockerEngine } from '../docker/engine.js';
import { removeContainerGitCredentials } from '../git/container-credentials.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { removeWorkspaceContainers } from './default-container.js';
import { WorkspaceLifecycle } from './lifecycle.js';

/** The named Docker volume that holds a workspace's files. */
export function workspaceVolume(workspaceId: string): string {
  return `warmstart-ws-${workspaceId}`;
}

/**
 * Removes a workspace's containers; with `purge` also its volume, its
 * records (WorkspaceLifecycle.purge) and its runtime secrets. The one
 * removal `warmstart down` and `DELETE /v1/workspaces/:id` share. Returns
 * how many containers went.
 */
export async function removeWorkspace(
  deps: { engine: DockerEngine; store: WorkspaceStore; config: { runtimeDir: string }; lifecycle?: WorkspaceLifecycle },
  workspaceId: string,
  purge: boolean,
): Promise<number> {
  const removed = await removeWorkspaceContainers(deps.engine, workspaceId);
  if (purge) {
    await deps.engine.removeVolume(workspaceVolume(workspaceId));
    await (deps.lifecycle ?? new WorkspaceLifecycle(deps.store)).purge(workspaceId);
    await removeContainerGitCredentials(deps.config.runtimeDir, workspaceId);
  }
  return removed;
}
