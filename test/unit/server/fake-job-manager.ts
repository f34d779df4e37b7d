import type { CreateWorkspaceBody, ExistingWorkspaceView, WorkspaceStatus, WorkspaceView } from '../../../shared/src/api.js';
import type { SequencedEvent } from '../../../agent/src/events/events.js';
import type { Caller, EventsOptions, JobManager, SubmitOptions } from '../../../agent/src/jobs/job-manager.js';
import { apiError } from '../../../agent/src/server/http-error.js';
import { repeatOf, requestDigest, type RequestDigest } from '../../../agent/src/workspace/idempotency.js';
import { assertSameRepository, isLegal } from '../../../agent/src/workspace/lifecycle.js';

/** Statuses with no job at work: event streams end there (a DELETE ends the job too). */
const TERMINAL: ReadonlySet<WorkspaceStatus> = new Set(['ready', 'recovery', 'failed', 'deleting']);

/** An event as a test writes it: one of the kinds (the Omit taken per kind), without the stamps `emit` adds. */
type EventBody<E = SequencedEvent> = E extends unknown ? Omit<E, 'ts' | 'workspaceId' | 'seq'> : never;

interface Entry {
  view: WorkspaceView;
  /** what the real record keeps of the POST that queued it (agent/src/workspace/idempotency.ts) */
  request: RequestDigest;
  events: SequencedEvent[];
  /** the next event's seq: numbering goes on across the runs of an id, as the real log's does */
  nextSeq: number;
  wake: Array<() => void>;
}

/**
 * An in-memory JobManager for the HTTP tests. It refuses what the real one
 * refuses (duplicate id, another repository on a kept id, unknown id, not
 * accepting) with the same codes, and takes what it takes: a `failed` id or
 * one deleted without purge is prepared again, by the real lifecycle's rules
 * (agent/src/workspace/lifecycle.ts), and a repeated POST is answered with
 * the workspace by the real rules (agent/src/workspace/idempotency.ts). It
 * runs no jobs: tests move workspaces along with `emit` and `finish`; events
 * are numbered as the real agent numbers them, and `after` resumes.
 */
export class FakeJobManager implements JobManager {
  private readonly entries = new Map<string, Entry>();
  private accept = true;
  /** Signals handed to `events`, to see that the server aborts them. */
  readonly signals: AbortSignal[] = [];
  /** The `after` of each `events` call, as the route passed it. */
  readonly afters: Array<number | undefined> = [];
  submitted: CreateWorkspaceBody[] = [];
  /** Make a method throw, to test the error handler. */
  failWith: Error | null = null;

  get accepting(): boolean {
    return this.accept;
  }

  stopAccepting(): void {
    this.accept = false;
  }

  async submit(body: CreateWorkspaceBody, _caller?: Caller, options: SubmitOptions = {}): Promise<WorkspaceView | ExistingWorkspaceView> {
    if (!this.accept) throw apiError('SHUTTING_DOWN', 'the agent is shutting down');
    const request = requestDigest(body, options.requester ?? 'node', options.idempotencyKey);
    const asRecord = (e: Entry) => ({ id: e.view.id, status: e.view.status, request: e.request });
    const keyHolder = request.key === null ? undefined : [...this.entries.values()].find((e) => e.request.key === request.key);
    const current = this.entries.get(body.id);
    const repeat = repeatOf(body.id, request, keyHolder ? asRecord(keyHolder) : null, current ? asRecord(current) : null);
    if (repeat) return { ...structuredClone(this.entries.get(repeat.id)!.view), existing: true };
    const existing = current?.view ?? null;
    if (existing && !isLegal('queue', existing.status)) throw apiError('WORKSPACE_EXISTS', `workspace ${body.id} exists`);
    assertSameRepository(existing, body.repository);
    this.submitted.push(body);
    const now = new Date().toISOString();
    const view: WorkspaceView = {
      id: body.id,
      workspaceId: body.id,
      outcome: null,
      repository: body.repository,
      configName: body.configName ?? null,
      status: 'queued',
      containerId: null,
      profile: null,
      cache: null,
      push: null,
      controls: null,
      timings: {},
      error: null,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    this.entries.set(body.id, { view, request, events: [], nextSeq: current?.nextSeq ?? 1, wake: [] });
    return structuredClone(view);
  }

  async get(id: string): Promise<WorkspaceView | null> {
    if (this.failWith) throw this.failWith;
    const entry = this.entries.get(id);
    return entry ? structuredClone(entry.view) : null;
  }

  async list(): Promise<WorkspaceView[]> {
    if (this.failWith) throw this.failWith;
    return [...this.entries.values()].map((e) => structuredClone(e.view));
  }

  async remove(id: string, options: { purge: boolean }): Promise<WorkspaceView> {
    const entry = this.require(id);
    // As the real one: the last view says `deleting`; without purge the record stays, saying so.
    const view = { ...structuredClone(entry.view), status: 'deleting' as const, updatedAt: new Date().toISOString() };
    if (options.purge) {
      this.entries.delete(id);
      this.wakeAll(entry);
    } else this.finish(id, 'deleting');
    return view;
  }

  async *events(id: string, signal: AbortSignal, options: EventsOptions = {}): AsyncIterable<SequencedEvent> {
    const entry = this.require(id);
    this.signals.push(signal);
    this.afters.push(options.after);
    const after = options.after ?? 0;
    let next = 0;
    while (!signal.aborted) {
      while (next < entry.events.length) {
        const e = entry.events[next++]!;
        if (e.seq > after) yield e;
      }
      if (TERMINAL.has(entry.view.status)) return;
      await new Promise<void>((resolve) => {
        entry.wake.push(resolve);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] } {
    const views = [...this.entries.values()].map((e) => e.view);
    return {
      running: views.filter((v) => v.status === 'creating').length,
      queued: views.filter((v) => v.status === 'queued').length,
      pushing: 0,
      activeWorkspaces: views.filter((v) => !TERMINAL.has(v.status)).map((v) => v.id),
    };
  }

  /** Test control: append an event and wake followers. */
  emit(id: string, event: EventBody): void {
    const entry = this.require(id);
    entry.events.push({ ts: new Date().toISOString(), workspaceId: id, seq: entry.nextSeq++, ...event } as SequencedEvent);
    this.wakeAll(entry);
  }

  /** Test control: move a workspace to a status (terminal ends event streams). */
  finish(id: string, status: WorkspaceStatus): void {
    const entry = this.require(id);
    entry.view = { ...entry.view, status, updatedAt: new Date().toISOString() };
    this.wakeAll(entry);
  }

  private wakeAll(entry: Entry): void {
    const wake = entry.wake.splice(0);
    wake.forEach((w) => w());
  }

  private require(id: string): Entry {
    const entry = this.entries.get(id);
    if (!entry) throw apiError('WORKSPACE_NOT_FOUND', `no workspace ${id}`);
    return entry;
  }
}
