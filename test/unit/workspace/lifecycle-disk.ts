import { WarmstartError } from '../../../agent/src/errors.js';
import { WorkspaceStore, type WorkspaceRecord } from '../../../agent/src/state/workspace-store.js';

/** A switch for the store below: while `full` is set, record writes fail. */
export interface Disk {
  full: boolean;
}

/**
 * A real WorkspaceStore on the real file system, except that while
 * `disk.full` is set every write of a workspace record fails as a full disk
 * makes it fail (STATE_WRITE_FAILED, ENOSPC). Event logs are not affected.
 * It replaces the store's one writer of `workspace.json` (its private
 * `write`, state/workspace-store.ts) on this instance only: no module is mocked.
 */
export function fillableStore(stateDir: string, disk: Disk): WorkspaceStore {
  const store = new WorkspaceStore(stateDir);
  const writer = store as unknown as { write(record: WorkspaceRecord): Promise<void> };
  const real = writer.write.bind(store);
  writer.write = (record) =>
    disk.full
      ? Promise.reject(
          new WarmstartError('STATE_WRITE_FAILED', `could not write ${store.dir(record.id)}/workspace.json`, {
            detail: 'ENOSPC: no space left on device, write',
          }),
        )
      : real(record);
  return store;
}
