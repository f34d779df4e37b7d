import type { CreateWorkspaceBody, ExistingWorkspaceView, WorkspaceView } from '../../../shared/src/api.js';
import type { WorkspaceEvent } from '../events/events.js';

/** Who submits a job (server/auth.ts Principal): how far the token reaches, and its subject. */
export interface Caller {
  scope: 'node' | 'workspace';
  owner: string | null;
}

/** How a POST identifies itself, for recognising a repeat of it (workspace/idempotency.ts). */
export interface SubmitOptions {
  /** who asks (server/routes/workspace-routes.ts `requesterOf`); `node` when absent */
  requester?: string;
  /** the request's Idempotency-Key, if it sent one */
  idempotencyKey?: string | null;
}

/** Where a follower of a workspace's events starts. */
export interface EventsOptions {
  /**
   * Only events with a seq above this (events/event-seq.ts): every one the
   * workspace's log holds, earlier runs' too, then the running job's. Absent:
   * a running job's own events from its first, or everything the log holds.
   */
  after?: number;
}

/**
 * What the HTTP API needs from the job side of the agent. Errors are
 * WarmstartErrors: input codes (400), WORKSPACE_EXISTS (409),
 * WORKSPACE_NOT_FOUND (404), SHUTTING_DOWN (503).
 */
export interface JobManager {
  /**
   * Validates, records the workspace as `queued` and schedules its job; or,
   * when the POST repeats the one that made a workspace, answers that one
   * (`existing: true`) and does nothing else. IDEMPOTENCY_KEY_REUSED (422),
   * IDEMPOTENCY_KEY_IN_USE (409).
   */
  submit(body: CreateWorkspaceBody, caller?: Caller, options?: SubmitOptions): Promise<WorkspaceView | ExistingWorkspaceView>;
  get(id: string): Promise<WorkspaceView | null>;
  list(): Promise<WorkspaceView[]>;
  /**
   * Stops a running or queued job, removes the workspace's containers, and
   * with `purge` its volume and records too. Resolves with the last view.
   */
  remove(id: string, options: { purge: boolean }): Promise<WorkspaceView>;
  /**
   * The workspace's events so far, then new ones as they happen, ending once
   * the workspace is in a terminal state (or the signal aborts).
   */
  events(id: string, signal: AbortSignal, options?: EventsOptions): AsyncIterable<WorkspaceEvent>;
  /** Counts for /health, heartbeats and metrics. */
  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] };
  /** Refuse new jobs from now on (SIGTERM). */
  stopAccepting(): void;
  readonly accepting: boolean;
}
