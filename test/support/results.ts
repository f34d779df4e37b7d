import type { WorkspaceResult } from '../../shared/src/workspace-result.js';

/** A ready result with nothing cached or pushed, as a job manager's pipeline double returns it. */
export function readyResult(id: string): WorkspaceResult {
  return {
    outcome: 'ready',
    workspaceId: id,
    containerId: `c-${id}`,
    profile: 'devcontainer',
    cache: { ref: null, hit: 'disabled', reason: 'no cache registry configured', stepsCached: null, stepsTotal: null },
    push: { status: 'skipped', ref: null, reason: 'no cache ref', ms: null },
    controls: { noCache: false, noPush: false, pushTimeoutSeconds: 600 },
    timings: { ready: 1 },
    error: null,
  };
}
