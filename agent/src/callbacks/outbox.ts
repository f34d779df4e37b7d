/**
 * Callbacks to the control plane that must arrive even if the agent restarts
 * in between: each is written to disk before the first attempt and removed
 * only once the control plane accepted it (2xx) or refused it for good (4xx).
 */
export interface CallbackRequest {
  /** full URL, e.g. `<callback.url>/workspaces/<id>/ready` */
  url: string;
  /** sent as `Authorization: Bearer <token>`; stored with the callback, never logged */
  token: string;
  body: unknown;
  /** for logs and metrics */
  kind: 'ready' | 'provisioning-failed';
  workspaceId: string;
}

export interface CallbackOutbox {
  /** Persists the callback, then delivers it in the background with retries. */
  enqueue(request: CallbackRequest): Promise<void>;
  /** Loads callbacks left from before a restart and starts delivering them. */
  start(): Promise<void>;
  /** Stops retry timers; pending callbacks stay on disk for the next start. */
  stop(): Promise<void>;
  /** Callbacks not yet delivered. */
  pending(): number;
  /**
   * Waits until nothing is pending or `timeoutMs` ran out (shutdown); true
   * when everything was delivered or given up. Optional: a fake may omit it.
   */
  flush?(timeoutMs: number): Promise<boolean>;
}
