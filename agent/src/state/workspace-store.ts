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
   * never interleave; `flush()` waits for them.
   */
  eventLog(id: string): EventSink & { flush(): Promise<void> } {
    const path = join(this.dir(id), 'events.ndjson');
    let chain: Promise<void> = mkdir(this.dir(id), { recursive: true, mode: 0o700 }).then(() => undefined);
    return {
      emit: (e: WorkspaceEvent) => {
        chain = chain.then(() => appendFile(path, `${JSON.stringify(e)}\n`, { mode: 0o600 })).catch(() => undefined);
      },
      flush: () => chain,
    };
  }
}
