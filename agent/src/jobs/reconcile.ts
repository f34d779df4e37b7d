import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DockerEngine } from '../docker/engine.js';
import { describeError } from '../errors.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { WorkspaceLifecycle } from '../workspace/lifecycle.js';
import { removeWorkspaceContainers, WORKSPACE_LABEL } from '../workspace/default-container.js';

export interface ReconcileReport {
  /** jobs that were queued or creating when the agent died: now failed */
  restarted: string[];
  /** ready workspaces whose container is gone */
  missing: string[];
}

/** Stops a devcontainers CLI left running by the agent's previous life (it runs in its own process group). */
async function stopLeftoverCli(pid: number): Promise<boolean> {
  let cmdline: string;
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch {
    return false; // gone already
  }
  if (!cmdline.includes('devcontainer')) return false; // the pid was reused by something else
  try {
    process.kill(-pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * Brings the records in line with Docker at start-up: a job that was running
 * when the agent died is failed with AGENT_RESTARTED and its half-made
 * containers go (the volume stays); a ready workspace whose container is gone
 * is flagged; a push that never settled is recorded as failed; temporary
 * files of record writes cut off by the crash are removed, and so are the
 * volume fill's helper containers a killed copy left.
 */
export async function reconcile(
  store: WorkspaceStore,
  engine: DockerEngine,
  logger: Logger,
  lifecycle: WorkspaceLifecycle = new WorkspaceLifecycle(store),
  now: () => number = Date.now,
): Promise<ReconcileReport> {
  const report: ReconcileReport = { restarted: [], missing: [] };
  // A record write cut off by the kill leaves its temporary beside the record (never in its place).
  const swept = await store.sweepTemporaries().catch((err: unknown) => {
    logger.warn({ err: describeError(err) }, 'temporary files of cut-off record writes not swept');
    return 0;
  });
  if (swept > 0) logger.warn({ files: swept }, 'removed temporary files of record writes cut off by the previous agent');
  const unreadable = (id: string, err: unknown): void =>
    logger.error(
      { workspaceId: id, err: describeError(err) },
      'workspace record unreadable: not reconciled (repair or remove it; until then the control plane hears nothing of it)',
    );
  await sweepHelpers(engine, logger, now);
  for (const record of await store.list(unreadable)) {
    const log = logger.child({ workspaceId: record.id });
    try {
      if (record.status === 'queued' || record.status === 'creating') {
        const pid = await store.loadCliPid(record.id);
        if (pid !== null && (await stopLeftoverCli(pid))) log.warn({ pid }, 'stopped a devcontainers CLI left by the previous agent');
        await store.clearCliPid(record.id);
        const removed = await removeWorkspaceContainers(engine, record.id);
        await lifecycle.interrupt(record.id);
        report.restarted.push(record.id);
        log.warn({ containersRemoved: removed }, 'job interrupted by an agent restart marked failed');
        continue;
      }
      if (record.status === 'ready' || record.status === 'recovery') {
        const containers = await engine.findContainers({ [WORKSPACE_LABEL]: record.id });
        const id = record.result?.containerId;
        const alive = containers.some((c) => c.id === id && c.state === 'running');
        const pushPending = record.result?.push.status === 'pending';
        if (alive && !pushPending && !record.containerMissing) continue;
        await lifecycle.recheck(record.id, { running: alive });
        if (!alive) {
          report.missing.push(record.id);
          log.warn({ containerId: id }, 'ready workspace has no running container');
        }
      }
    } catch (err) {
      log.error({ err: describeError(err) }, 'could not reconcile workspace');
    }
  }
  return report;
}

/** A copy helper older than this was left by an agent that died during the copy (a copy takes seconds). */
const HELPER_MAX_AGE_MS = 10 * 60_000;

/**
 * Removes the volume fill's helper containers (created, never started;
 * label `warmstart.helper`) that an agent killed during a copy left behind.
 * Only old ones: a `warmstart up` on this node may be copying right now.
 */
async function sweepHelpers(
  engine: Pick<DockerEngine, 'findContainersWithLabel' | 'removeContainer'>,
  logger: Logger,
  now: () => number,
): Promise<void> {
  try {
    const stale = (await engine.findContainersWithLabel('warmstart.helper')).filter(
      (c) => c.state === 'created' && c.createdAt !== undefined && now() - c.createdAt > HELPER_MAX_AGE_MS,
    );
    for (const c of stale) await engine.removeContainer(c.id);
    if (stale.length > 0) logger.warn({ containers: stale.length }, 'removed copy helpers an interrupted agent left');
  } catch (err) {
    logger.warn({ err: describeError(err) }, 'copy helpers left by an interrupted agent not swept');
  }
}
