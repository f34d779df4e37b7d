import type { WorkspaceView } from '../../../shared/src/api.js';
import type { WorkspaceRecord } from '../state/workspace-store.js';

/** A stored record as the API shows it: the CLI's result fields plus its lifecycle. */
export function toView(r: WorkspaceRecord): WorkspaceView {
  const res = r.result;
  const view: WorkspaceView = {
    id: r.id,
    workspaceId: r.id,
    outcome: res?.outcome ?? (r.status === 'failed' ? 'failed' : null),
    repository: r.repository,
    configName: r.configName,
    status: r.status,
    containerId: res?.containerId ?? null,
    profile: res?.profile ?? null,
    cache: res?.cache ?? null,
    push: res?.push ?? null,
    // Records written before the field existed have none.
    controls: res?.controls ?? null,
    timings: res?.timings ?? {},
    error: r.error ?? res?.error ?? null,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.containerMissing) view.containerMissing = true;
  return view;
}
