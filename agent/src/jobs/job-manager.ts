import type { CreateWorkspaceBody, WorkspaceView } from '../../../shared/src/api.js';
import type { WorkspaceEvent } from '../events/events.js';

/** Who submits a job (server/auth.ts Principal): how far the token reaches, and its subject. */
export interface Caller {
  scope: 'node' | 'workspace';
  owner: string | null;
}

/**
 * What the HTTP API needs from the job side of the agent. Errors are
 * WarmstartErrors: input codes (400), WORKSPACE_EXISTS (409),
 * WORKSPACE_NOT_FOUND (404), SHUTTING_DOWN (503).
 */
export interface JobManager {
  /** Validates, records the workspace as `queued` and schedules its job. */
  submit(body: CreateWorkspaceBody, caller?: Caller): Promise<WorkspaceView>;
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
  events(id: string, signal: AbortSignal): AsyncIterable<WorkspaceEvent>;
  /** Counts for /health, heartbeats and metrics. */
  stats(): { running: number; queued: number; pushing: number; activeWorkspaces: string[] };
  /** Refuse new jobs from now on (SIGTERM). */
  stopAccepting(): void;
  readonly accepting: boolean;
}
