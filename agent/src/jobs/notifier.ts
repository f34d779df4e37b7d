import type { CreateWorkspaceBody, WorkspaceView } from '../../../shared/src/api.js';
import { assertCallbackUrl, callbackTarget, type CallbackPolicy } from '../callbacks/callback-url.js';
import type { HeartbeatOptions } from '../callbacks/heartbeat.js';
import type { CallbackOutbox } from '../callbacks/outbox.js';

export type Callback = NonNullable<CreateWorkspaceBody['callback']>;
export type NotificationKind = 'ready' | 'provisioning-failed';

/** What the job side tells the control plane (docs/api.md "Callbacks"). */
export interface Notifier {
  /** Refuses a callback URL this agent will not POST to (400 INVALID_CALLBACK_URL), before anything is recorded. */
  checkCallback(url: string): Promise<void>;
  /** Queues the callback of `kind` to `<callback.url>/workspaces/<id>/<kind>`, carrying the workspace's view. */
  notify(callback: Callback, view: WorkspaceView, kind: NotificationKind): Promise<void>;
}

/**
 * Callbacks through the outbox (callbacks/outbox.ts: on disk before the first
 * attempt, retried). `policy` is where callbacks may go; absent: no origin
 * listed, so private and loopback hosts are refused.
 */
export function outboxNotifier(outbox: CallbackOutbox, policy: CallbackPolicy = { origins: new Set() }): Notifier {
  return {
    checkCallback: (url) => assertCallbackUrl(url, policy),
    notify: (callback, view, kind) =>
      outbox.enqueue({
        url: callbackTarget(callback.url, view.id, kind),
        token: callback.token,
        body: { workspaceId: view.id, status: view.status, workspace: view },
        kind,
        workspaceId: view.id,
      }),
  };
}

/** The heartbeat's hook into the job queue (callbacks/heartbeat.ts `stats`): what it reports of the jobs. */
export function heartbeatStats(jobs: { stats(): { activeWorkspaces: string[]; queued: number } }): HeartbeatOptions['stats'] {
  return () => {
    const s = jobs.stats();
    return { activeWorkspaces: s.activeWorkspaces, queued: s.queued };
  };
}
