import { appendFile, mkdir, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import type { ErrorCode } from '../../../shared/src/error-codes.js';
import { boundEvent, MAX_EVENT_LOG_BYTES, type BoundListener } from '../events/event-bounds.js';
import type { EventSink, WorkspaceEvent } from '../events/events.js';
import { unlessMissing } from '../util/best-effort.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import { writeFileAtomic } from './atomic-file.js';
import { trimEventLog } from './event-log-trim.js';

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
  error?: { code: ErrorCode; message: string; detail?: string } | null;
  /** a ready workspace whose container was found gone at start-up */
  containerMissing?: boolean;
  /**
   * Who the workspace belongs to: the subject of the JWT that created it,
   * null for the static token and the CLI. Set once, at creation; golden
   * images take their owner from here (images/golden.ts). Absent in records
   * written before it existed.
   */
  owner?: string | null;
  /**
   * Digests of the POST that queued this run (workspace/idempotency.ts), so a
   * repeat of it is answered with this workspace. Digests only: the body held
   * secrets. Absent for runs of the CLI and records written before it existed.
   */
  request?: { body: string; key: string | null };
  createdAt: string;
  updatedAt: string;
}

export interface SaveOptions {
  /**
   * When the write fails (a full disk), keep the record in memory: load and
   * list serve it from there, and flushUnsaved writes it once it can. For
   * what has happened to a workspace (a job failed); not for a request that
   * is refused when it cannot be recorded.
   */
  keepIfUnwritten?: boolean;
}

/** Workspace records and event logs under `<stateDir>/workspaces/<id>/`. */
export class WorkspaceStore {
  /** Records whose last write failed; newer than what the disk holds. */
  private readonly unsaved = new Map<string, WorkspaceRecord>();
  /** Record writes and removals of one workspace run one at a time, so the last one wins on disk. */
  private readonly writes = new KeyedQueue();
  /** Event appends of one workspace, in order; a record write waits for those before it. */
  private readonly appends = new KeyedQueue();

  constructor(readonly stateDir: string) {}

  dir(id: string): string {
    return join(this.stateDir, 'workspaces', id);
  }

  /** Host-side clone of the repository: the CLI's workspace folder and build context. */
  sourceDir(id: string): string {
    return join(this.dir(id), 'src');
  }

  async load(id: string): Promise<WorkspaceRecord | null> {
    const kept = this.unsaved.get(id);
    if (kept) return kept;
    try {
      return JSON.parse(await readFile(join(this.dir(id), 'workspace.json'), 'utf8')) as WorkspaceRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Every workspace record on disk or kept in memory. One that cannot be
   * read or parsed is left out of the list and handed to `onUnreadable`
   * (the callers log it: such a workspace is neither served nor reconciled).
   */
  async list(onUnreadable?: (id: string, err: unknown) => void): Promise<WorkspaceRecord[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.stateDir, 'workspaces'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      ids = [];
    }
    for (const id of this.unsaved.keys()) if (!ids.includes(id)) ids.push(id);
    const records = await Promise.all(
      ids.map((id) =>
        this.load(id).catch((err: unknown) => {
          onUnreadable?.(id, err);
          return null;
        }),
      ),
    );
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

  /** Writes the record (atomically: a failed write leaves the old one); throws STATE_WRITE_FAILED. */
  async save(record: WorkspaceRecord, options: SaveOptions = {}): Promise<void> {
    await this.appends.idle(record.id); // events emitted so far land first
    await this.writes.run(record.id, async () => {
      try {
        await this.write(record);
        this.unsaved.delete(record.id); // the disk holds the newest now
      } catch (err) {
        if (options.keepIfUnwritten) this.unsaved.set(record.id, record);
        throw err;
      }
    });
  }

  /** How many records live only in memory (their write failed). */
  unsavedCount(): number {
    return this.unsaved.size;
  }

  /** Tries again to write the records kept in memory; resolves with how many are still unwritten. */
  async flushUnsaved(): Promise<number> {
    await Promise.all(
      [...this.unsaved.keys()].map((id) =>
        this.writes
          .run(id, async () => {
            const record = this.unsaved.get(id);
            if (!record) return; // removed, or written by a newer save meanwhile
            await this.write(record);
            if (this.unsaved.get(id) === record) this.unsaved.delete(id);
          })
          .catch(() => undefined),
      ),
    );
    return this.unsaved.size;
  }

  private write(record: WorkspaceRecord): Promise<void> {
    return writeFileAtomic(join(this.dir(record.id), 'workspace.json'), `${JSON.stringify(record, null, 2)}\n`);
  }

  /**
   * Removes temporary files a write left when the process died between
   * creating and renaming them (kill -9). Only at start-up, when no write of
   * this process can be under way. Resolves with how many went.
   */
  async sweepTemporaries(): Promise<number> {
    let removed = 0;
    let ids: string[];
    try {
      ids = await readdir(join(this.stateDir, 'workspaces'));
    } catch {
      return 0;
    }
    for (const id of ids) {
      let names: string[];
      try {
        names = await readdir(this.dir(id));
      } catch {
        continue;
      }
      for (const name of names.filter((n) => n.endsWith('.tmp'))) {
        await rm(join(this.dir(id), name), { force: true });
        removed += 1;
      }
    }
    return removed;
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
    await this.writes.run(id, async () => {
      this.unsaved.delete(id);
      await rm(this.dir(id), { recursive: true, force: true });
    });
  }

  /**
   * A sink that appends events to `events.ndjson`. Appends are queued per
   * workspace, and `save` waits for that queue, so an event emitted before a
   * record is saved is on disk before the record: a reader who sees a settled
   * record finds its events. The directory is made on the first event, not
   * here: a request refused as bad input emits none and must leave nothing.
   * Bounded (events/event-bounds.ts): each text cut to MAX_EVENT_TEXT_CHARS;
   * a log line that would take the file past `maxBytes` first has the
   * oldest log lines trimmed (state/event-log-trim.ts).
   */
  eventLog(
    id: string,
    bounds: {
      maxBytes?: number;
      onBound?: BoundListener;
      /** an event that could not be appended (a full or failing disk); the ones after it are still tried */
      onLost?: (event: WorkspaceEvent, err: unknown) => void;
    } = {},
  ): EventSink & { flush(): Promise<void> } {
    const maxBytes = bounds.maxBytes ?? MAX_EVENT_LOG_BYTES;
    const dir = this.dir(id);
    const path = join(dir, 'events.ndjson');
    let made = false;
    /** the log's length after the last whole line, once known */
    let size: number | null = null;
    /** events emitted and not yet handed to a write, in order */
    let pending: WorkspaceEvent[] = [];
    let drainQueued = false;
    /**
     * Appends every event emitted since the last drain with as few writes
     * as the cap allows (one, unless a trim falls in between): a build logs
     * hundreds of lines, and an open, a write and a close per line kept the
     * event loop and libuv's threads busy for as long as the build ran.
     */
    const drain = async (): Promise<void> => {
      drainQueued = false;
      const batch = pending;
      pending = [];
      let chunk: Buffer[] = [];
      let chunkEvents: WorkspaceEvent[] = [];
      let chunkBytes = 0;
      const write = async (): Promise<void> => {
        if (chunk.length === 0) return;
        const data = Buffer.concat(chunk, chunkBytes);
        const events = chunkEvents;
        chunk = [];
        chunkEvents = [];
        chunkBytes = 0;
        try {
          await appendFile(path, data, { mode: 0o600 });
          size! += data.length;
        } catch (err) {
          // A full disk can take part of the write: cut it off, so the log holds whole lines only
          // (these events are lost; the ones after them, once there is room, are not).
          await truncate(path, size!).catch(() => undefined); // the append's error is the one to report
          for (const e of events) bounds.onLost?.(e, err);
        }
      };
      let next = 0;
      try {
        if (!made) await mkdir(dir, { recursive: true, mode: 0o700 });
        made = true;
        size ??= (await unlessMissing(stat(path), null))?.size ?? 0;
        for (; next < batch.length; next++) {
          const e = batch[next]!;
          const line = Buffer.from(`${JSON.stringify(e)}\n`);
          if (e.type === 'log' && size + chunkBytes + line.length > maxBytes) {
            await write();
            const trimmed = await trimEventLog(path, Math.floor(maxBytes / 2));
            size = trimmed.size;
            if (trimmed.dropped > 0) bounds.onBound?.('dropped-file', trimmed.dropped);
          }
          chunk.push(line);
          chunkEvents.push(e);
          chunkBytes += line.length;
        }
        await write();
      } catch (err) {
        // The directory, the log's size or a trim failed: what was not written yet is lost.
        for (const e of [...chunkEvents, ...batch.slice(next)]) bounds.onLost?.(e, err);
      }
    };
    return {
      emit: (emitted: WorkspaceEvent) => {
        // One event per line, each cut to the cap (already so when the job manager did it first).
        pending.push(...boundEvent(emitted).events);
        // emit is synchronous: the write is queued, save() and flush() wait for the queue.
        if (!drainQueued) {
          drainQueued = true;
          void this.appends.run(id, drain);
        }
      },
      flush: () => this.appends.idle(id),
    };
  }
}
