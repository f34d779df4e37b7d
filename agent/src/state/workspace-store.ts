import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import type { EventSink, WorkspaceEvent } from '../events/events.js';
import { writeFileAtomic } from './atomic-file.js';

export type WorkspaceStatus = 'queued' | 'creating' | 'ready' | 'recovery' | 'failed' | 'deleting';

/** What is kept about a workspace across runs. Never holds a secret. */
export interface WorkspaceRecord {
  id: string;
  repository: string;
  configName: string | null;
  lightweight: boolean;
  status: WorkspaceStatus;
  result: WorkspaceResult | null;
  createdAt: string;
  updatedAt: string;
}

/** Workspace records and event logs under `<stateDir>/workspaces/<id>/`. */
export class WorkspaceStore {
  constructor(readonly stateDir: string) {}

  dir(id: string): string {
    return join(this.stateDir, 'workspaces', id);
  }

  /** Host-side clone of the repository: the CLI's workspace folder and build context. */
  sourceDir(id: string): string {
    return join(this.dir(id), 'src');
  }

  async load(id: string): Promise<WorkspaceRecord | null> {
    try {
      return JSON.parse(await readFile(join(this.dir(id), 'workspace.json'), 'utf8')) as WorkspaceRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async save(record: WorkspaceRecord): Promise<void> {
    await writeFileAtomic(join(this.dir(record.id), 'workspace.json'), `${JSON.stringify(record, null, 2)}\n`);
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }

  /**
   * A sink that appends events to `events.ndjson`. Appends are queued so lines
   * never interleave; `flush()` waits for them. The directory is made on the
   * first event, not here: a request refused as bad input emits none and must
   * leave nothing behind.
   */
  eventLog(id: string): EventSink & { flush(): Promise<void> } {
    const dir = this.dir(id);
    const path = join(dir, 'events.ndjson');
    let chain: Promise<void> = Promise.resolve();
    let made = false;
    return {
      emit: (e: WorkspaceEvent) => {
        chain = chain
          .then(async () => {
            if (!made) {
              await mkdir(dir, { recursive: true, mode: 0o700 });
              made = true;
            }
            await appendFile(path, `${JSON.stringify(e)}\n`, { mode: 0o600 });
          })
          .catch(() => undefined);
      },
      flush: () => chain,
    };
  }
}
