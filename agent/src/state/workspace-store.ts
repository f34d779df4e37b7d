import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
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
  /** an error outside a pipeline result (e.g. AGENT_RESTARTED) */
  error?: { code: string; message: string; detail?: string } | null;
  /** a ready workspace whose container was found gone at start-up */
  containerMissing?: boolean;
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

  /** Every workspace record on disk (unreadable ones are skipped). */
  async list(): Promise<WorkspaceRecord[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.stateDir, 'workspaces'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records = await Promise.all(ids.map((id) => this.load(id).catch(() => null)));
    return records.filter((r): r is WorkspaceRecord => r !== null);
  }

  /** The events recorded for a workspace, oldest first. */
  async readEvents(id: string): Promise<WorkspaceEvent[]> {
    try {
      const text = await readFile(join(this.dir(id), 'events.ndjson'), 'utf8');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as WorkspaceEvent];
          } catch {
            return []; // a torn last line after a crash
          }
        });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async save(record: WorkspaceRecord): Promise<void> {
    await this.pending.get(record.id); // events emitted so far land first
    await writeFileAtomic(join(this.dir(record.id), 'workspace.json'), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** The running devcontainers CLI of a job, so a restarted agent can stop a leftover one. */
  async saveCliPid(id: string, pid: number): Promise<void> {
    await writeFileAtomic(join(this.dir(id), 'cli.pid'), `${pid}\n`);
  }

  async clearCliPid(id: string): Promise<void> {
    await rm(join(this.dir(id), 'cli.pid'), { force: true });
  }

  async loadCliPid(id: string): Promise<number | null> {
    try {
      const pid = Number((await readFile(join(this.dir(id), 'cli.pid'), 'utf8')).trim());
      return Number.isInteger(pid) && pid > 1 ? pid : null;
    } catch {
      return null;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }

  /**
   * A sink that appends events to `events.ndjson`. Appends are queued per
   * workspace, and `save` waits for that queue, so an event emitted before a
   * record is saved is on disk before the record: a reader who sees a settled
   * record finds its events. The directory is made on the first event, not
   * here: a request refused as bad input emits none and must leave nothing.
   */
  eventLog(id: string): EventSink & { flush(): Promise<void> } {
    const dir = this.dir(id);
    const path = join(dir, 'events.ndjson');
    let made = false;
    return {
      emit: (e: WorkspaceEvent) => {
        this.enqueue(id, async () => {
          if (!made) await mkdir(dir, { recursive: true, mode: 0o700 });
          made = true;
          await appendFile(path, `${JSON.stringify(e)}\n`, { mode: 0o600 });
        });
      },
      flush: () => this.pending.get(id) ?? Promise.resolve(),
    };
  }

  private readonly pending = new Map<string, Promise<void>>();

  /** Runs writes of one workspace in order; a failed append does not stop later ones. */
  private enqueue(id: string, write: () => Promise<void>): Promise<void> {
    const next = (this.pending.get(id) ?? Promise.resolve()).then(write).catch(() => undefined);
    this.pending.set(id, next);
    void next.then(() => {
      if (this.pending.get(id) === next) this.pending.delete(id);
    });
    return next;
  }
}
