import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { JobEvent, JobView } from '../../../shared/src/api.js';
import { describeError, toErrorBody, WarmstartError, type ErrorBody } from '../errors.js';
import type { JobProgress } from './job-progress.js';
import type { ResourceJobStore, StoredJob } from './resource-job-store.js';
import { Wakeup } from '../util/wakeup.js';
import { settlesWithin } from '../util/with-timeout.js';

type Kind = JobView['kind'];
type ViewOf<K extends Kind> = Extract<JobView, { kind: K }>;
type Stamped = 'ts' | 'jobId' | 'seq';
/** An event as the job emits it, before it is stamped with its time, job and sequence number. */
type NewEvent = JobEvent extends infer E ? (E extends { seq: number } ? Omit<E, Stamped> : never) : never;

/** A job to accept: what it is, what it was asked, and the work. */
export interface JobSpec<K extends Kind> {
  kind: K;
  /**
   * What the job makes, in words (`machine dev-1 on incus`): one job at a
   * time per target; a second is refused with 409 BACKEND_PRECONDITION.
   */
  target: string;
  request: ViewOf<K>['request'];
  run(progress: JobProgress): Promise<NonNullable<ViewOf<K>['result']>>;
}

export interface ResourceJobsOptions {
  /** where the records are kept (`<state>/jobs`); null: in memory only (tests) */
  store: ResourceJobStore | null;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** finished jobs kept, the oldest forgotten first; default 200 */
  keep?: number;
  /** takes the agent's own secrets out of a text before it is kept (error messages, notes) */
  scrub?: (text: string) => string;
  /** ms clock for phase times; default performance.now */
  clock?: () => number;
}

interface Entry {
  view: JobView;
  events: JobEvent[];
  /**
   * What readers see: the view and how many events, as of the last record
   * write. A follower never sees an event the disk may not have, so after a
   * restart no seq it saw stands for another event.
   */
  published: { view: JobView; events: number };
  waiters: Wakeup;
  done: Promise<void>;
  writing: Promise<void> | null;
  dirty: boolean;
}

const DEFAULT_KEEP = 200;

/**
 * The jobs of `POST /v1/machines` and `POST /v1/images`: accepted at once
 * (202) once their input has been checked, run in the background, read
 * through `/v1/jobs/:jobId`. Like the workspace jobs (jobs/local-job-manager.ts)
 * the record is on disk before the 202 (507 STATE_WRITE_FAILED and nothing
 * started when the disk refuses), every event is kept with the record, new
 * jobs are refused once shutting down, and a job the agent was stopped in
 * the middle of is `failed` with AGENT_RESTARTED at the next start. There is
 * no queue: these jobs never took a build slot, and do not now.
 */
export class ResourceJobs {
  private readonly entries = new Map<string, Entry>();
  /** target → the id of the job at work on it */
  private readonly busy = new Map<string, string>();
  private open = true;

  constructor(private readonly o: ResourceJobsOptions) {}

  /** The jobs on disk, those that were running marked failed (AGENT_RESTARTED); resolves with their ids. */
  async load(): Promise<string[]> {
    const store = this.o.store;
    if (!store) return [];
    const stored = await store.loadAll((file, err) =>
      this.o.logger.error({ file, err: describeError(err) }, 'job record unreadable: left out (repair or remove it)'),
    );
    const interrupted: Entry[] = [];
    for (const s of stored) {
      const entry = newEntry(s.view, s.events);
      this.entries.set(s.view.id, entry);
      if (s.view.status === 'running') interrupted.push(entry);
    }
    await Promise.all(
      interrupted.map((e) => this.settle(e, { status: 'failed', error: { code: 'AGENT_RESTARTED', message: interruptedMessage(e.view) } })),
    );
    for (const e of interrupted) this.o.logger.warn({ jobId: e.view.id, kind: e.view.kind }, 'job interrupted by an agent restart marked failed');
    await this.trim();
    return interrupted.map((e) => e.view.id);
  }

  get accepting(): boolean {
    return this.open;
  }

  stopAccepting(): void {
    this.open = false;
  }

  /**
   * Records the job as `running` and starts it; resolves with its view. Call
   * it only once the input is checked: from here on a failure is the job's,
   * not the request's.
   */
  async submit<K extends Kind>(spec: JobSpec<K>): Promise<ViewOf<K>> {
    if (!this.open) throw new WarmstartError('SHUTTING_DOWN', 'the agent is shutting down and takes no new jobs');
    const holder = this.busy.get(spec.target);
    if (holder !== undefined) throw new WarmstartError('BACKEND_PRECONDITION', `job ${holder} is at work on ${spec.target}: wait for it to end`);
    const id = randomUUID();
    this.busy.set(spec.target, id); // before the first await: two requests at once make one job
    const now = new Date().toISOString();
    const view = {
      id,
      kind: spec.kind,
      status: 'running',
      request: spec.request,
      result: null,
      error: null,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    const entry = newEntry(view as JobView, []);
    this.stamp(entry, { type: 'status', status: 'running' });
    try {
      await this.o.store?.write(stored(entry));
    } catch (err) {
      this.busy.delete(spec.target);
      throw err; // STATE_WRITE_FAILED: nothing kept, nothing started
    }
    this.entries.set(id, entry);
    this.publish(entry, structuredClone(entry.view), entry.events.length);
    this.o.logger.info({ jobId: id, kind: spec.kind, target: spec.target }, 'job accepted');
    entry.done = this.run(entry, spec);
    return structuredClone(entry.published.view) as ViewOf<K>;
  }

  /** The job's view, or null when this node does not know it. */
  get(id: string): JobView | null {
    const entry = this.entries.get(id);
    return entry ? structuredClone(entry.published.view) : null;
  }

  /** Every job this node keeps, newest first. */
  list(): JobView[] {
    return [...this.entries.values()].map((e) => structuredClone(e.published.view)).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** The job's events with a seq above `after` (0: all), then new ones until the job ends or `signal` aborts. */
  async *events(id: string, after: number, signal: AbortSignal): AsyncGenerator<JobEvent> {
    const entry = this.entries.get(id);
    if (!entry) return;
    let next = Math.max(0, after); // seq n is at index n - 1
    while (!signal.aborted) {
      while (next < entry.published.events) yield entry.events[next++]!;
      if (entry.published.view.status !== 'running') return;
      await entry.waiters.wait(signal);
    }
  }

  /** How many jobs are running. */
  running(): number {
    return [...this.entries.values()].filter((e) => e.view.status === 'running').length;
  }

  /** Resolves true when every running job is over (its record written), false after `ms`. */
  async drain(ms: number): Promise<boolean> {
    return settlesWithin(Promise.all([...this.entries.values()].map((e) => e.done)), ms);
  }

  private async run<K extends Kind>(entry: Entry, spec: JobSpec<K>): Promise<void> {
    const { id } = entry.view;
    try {
      const result = await spec.run(this.progressOf(entry));
      await this.settle(entry, { status: 'done', result });
      this.o.logger.info({ jobId: id, kind: spec.kind }, 'job done');
    } catch (err) {
      const error = this.errorOf(err);
      this.o.logger.warn({ jobId: id, kind: spec.kind, code: error.code, err: describeError(err) }, 'job failed');
      await this.settle(entry, { status: 'failed', error });
    } finally {
      if (this.busy.get(spec.target) === id) this.busy.delete(spec.target);
      await this.trim();
    }
  }

  private progressOf(entry: Entry): JobProgress {
    const clock = this.o.clock ?? (() => performance.now());
    return {
      phase: async (phase, work) => {
        this.stamp(entry, { type: 'phase-start', phase });
        const t0 = clock();
        const end = (status: 'ok' | 'failed'): void =>
          this.stamp(entry, { type: 'phase-end', phase, ms: Math.max(0, Math.round(clock() - t0)), status });
        try {
          const value = await work();
          end('ok');
          return value;
        } catch (err) {
          end('failed');
          throw err;
        }
      },
      note: (text) => this.stamp(entry, { type: 'note', text: this.scrub(text) }),
      pushed: (push) =>
        this.stamp(entry, {
          type: 'push',
          status: push.status,
          ...(push.ms !== null ? { ms: push.ms } : {}),
          ...(push.reason !== null ? { text: this.scrub(push.reason) } : {}),
        }),
    };
  }

  /** The job's end: view, last event, record (awaited; a refused write is logged and retried with the next change). */
  private settle(
    entry: Entry,
    end: { status: 'done'; result: NonNullable<JobView['result']> } | { status: 'failed'; error: ErrorBody },
  ): Promise<void> {
    const now = new Date().toISOString();
    if (end.status === 'done') Object.assign(entry.view, { status: 'done', result: end.result, error: null });
    else Object.assign(entry.view, { status: 'failed', error: end.error });
    Object.assign(entry.view, { updatedAt: now, finishedAt: now });
    if (end.status === 'done') this.stamp(entry, { type: 'status', status: 'done' });
    else this.stamp(entry, { type: 'status', status: 'failed', code: end.error.code, text: end.error.message });
    return this.persist(entry);
  }

  private stamp(entry: Entry, event: NewEvent): void {
    entry.events.push({ ...event, ts: new Date().toISOString(), jobId: entry.view.id, seq: entry.events.length + 1 } as JobEvent);
    entry.view.updatedAt = new Date().toISOString();
    void this.persist(entry);
  }

  /** Readers see the view and the first `events` events from now on; followers wake. */
  private publish(entry: Entry, view: JobView, events: number): void {
    entry.published = { view, events };
    entry.waiters.wake();
  }

  /**
   * Writes the record, one write at a time per job (changes made meanwhile
   * go out with the next), and publishes what each write held. A write the
   * disk refuses is logged and published all the same: the job goes on in
   * memory, and its next change tries again.
   */
  private persist(entry: Entry): Promise<void> {
    if (!this.entries.has(entry.view.id)) return Promise.resolve(); // not accepted yet: submit writes and publishes
    const store = this.o.store;
    if (!store) {
      this.publish(entry, structuredClone(entry.view), entry.events.length);
      return Promise.resolve();
    }
    entry.dirty = true;
    entry.writing ??= (async () => {
      try {
        while (entry.dirty) {
          entry.dirty = false;
          const view = structuredClone(entry.view);
          const events = entry.events.length;
          await store
            .write({ version: 1, view, events: entry.events.slice(0, events) })
            .catch((err: unknown) =>
              this.o.logger.error(
                { jobId: view.id, err: describeError(err) },
                'could not write the job record; kept in memory, written with its next change',
              ),
            );
          this.publish(entry, view, events);
        }
      } finally {
        entry.writing = null;
      }
    })();
    return entry.writing;
  }

  private errorOf(err: unknown): ErrorBody {
    if (!(err instanceof WarmstartError)) return { code: 'INTERNAL', message: 'the job failed unexpectedly' };
    const body = toErrorBody(err);
    return { ...body, message: this.scrub(body.message), ...(body.detail !== undefined ? { detail: this.scrub(body.detail) } : {}) };
  }

  private scrub(text: string): string {
    return this.o.scrub ? this.o.scrub(text) : text;
  }

  /** Forgets the oldest finished jobs beyond `keep`, in memory and on disk. */
  private async trim(): Promise<void> {
    const finished = [...this.entries.values()]
      .filter((e) => e.view.status !== 'running' && e.writing === null)
      .sort((a, b) => (a.view.finishedAt ?? '').localeCompare(b.view.finishedAt ?? ''));
    for (const e of finished.slice(0, Math.max(0, finished.length - (this.o.keep ?? DEFAULT_KEEP)))) {
      this.entries.delete(e.view.id);
      await this.o.store
        ?.remove(e.view.id)
        .catch((err: unknown) => this.o.logger.warn({ jobId: e.view.id, err: describeError(err) }, 'could not remove an old job record'));
    }
  }
}

/**
 * Whether a caller sees a job: a node-wide caller sees every job; a token
 * scoped to one workspace (its `workspace` claim) only the image jobs of that
 * workspace, as it may create only those. Any other job is unknown to it (404).
 */
export function jobVisible(view: JobView, scopedTo: string | undefined): boolean {
  if (scopedTo === undefined) return true;
  return view.kind === 'image' && view.request.workspaceId === scopedTo;
}

function newEntry(view: JobView, events: JobEvent[]): Entry {
  return {
    view,
    events,
    published: { view: structuredClone(view), events: events.length },
    waiters: new Wakeup(),
    done: Promise.resolve(),
    writing: null,
    dirty: false,
  };
}

function stored(entry: Entry): StoredJob {
  return { version: 1, view: entry.view, events: entry.events };
}

function interruptedMessage(view: JobView): string {
  if (view.kind === 'machine') {
    const { name, backend } = view.request;
    return `the agent stopped while this job ran: machine ${name} on ${backend} may be half-made; look at it (or remove it) before asking again`;
  }
  return `the agent stopped while this job ran: image ${view.request.name}:${view.request.tag} may be missing or not pushed; create it again`;
}
