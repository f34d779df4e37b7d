import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containersWithLabel, volumeExists } from './docker.js';
import type { Agent } from './serve.js';

/**
 * What must hold on a node after any fault (issue 6): the workspace is in a
 * defined state, no job of it is left running, no container exists without a
 * record that names it, and no volume that should be there is gone. Each check
 * throws with what it found; on success a one-line summary is returned for
 * the fault matrix.
 */
export interface RecordView {
  status: string;
  containerId: string | null;
}

const SETTLED = new Set(['ready', 'recovery', 'failed']);

/** Devcontainers CLI processes (`devcontainer.js up`) working for the workspace. */
export async function cliProcessesFor(workspaceId: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (argv.some((a) => a.endsWith('devcontainer.js')) && argv.includes(`warmstart.workspace=${workspaceId}`)) out.push(name);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The invariants over `records` (null: no record). `volumes` lists the
 * volumes that must still exist. Returns e.g. "settled failed; 0 jobs running;
 * containers match records; 1/1 volumes kept".
 */
export async function checkInvariants(records: Map<string, RecordView | null>, volumes: string[] = []): Promise<string> {
  const problems: string[] = [];
  const states: string[] = [];
  for (const [id, rec] of records) {
    states.push(rec ? rec.status : 'no record');
    if (rec && !SETTLED.has(rec.status)) problems.push(`${id} is still ${rec.status}`);
    const running = await cliProcessesFor(id);
    if (running.length) problems.push(`${id}: devcontainer up still running (pids ${running.join(',')})`);
    const containers = await containersWithLabel(`warmstart.workspace=${id}`);
    const recorded = rec && (rec.status === 'ready' || rec.status === 'recovery') ? rec.containerId : null;
    for (const c of containers) {
      if (!recorded || !recorded.startsWith(c)) problems.push(`${id}: container ${c} has no record (record: ${recorded ?? 'none'})`);
    }
    if (recorded && !containers.some((c) => recorded.startsWith(c))) problems.push(`${id}: recorded container ${recorded.slice(0, 12)} is gone`);
  }
  let kept = 0;
  for (const v of volumes) {
    if (await volumeExists(v)) kept += 1;
    else problems.push(`volume ${v} is lost`);
  }
  if (problems.length) throw new Error(`node invariants broken: ${problems.join('; ')}`);
  const volumeNote = volumes.length ? `; ${kept}/${volumes.length} volumes kept` : '';
  return `${[...new Set(states)].join('/')}; no job running; containers match records${volumeNote}`;
}

/** The records as a running agent reports them, plus /health; the agent must answer. */
export async function agentInvariants(agent: Agent, ids: string[], volumes: string[] = []): Promise<string> {
  const health = await agent.request('/health');
  if (health.status !== 200) throw new Error(`agent stopped serving: /health answered ${health.status}`);
  const records = new Map<string, RecordView | null>();
  for (const id of ids) {
    const r = await agent.request(`/v1/workspaces/${encodeURIComponent(id)}`);
    if (r.status === 404) records.set(id, null);
    else if (r.ok) {
      const v = (await r.json()) as { status: string; containerId: string | null };
      records.set(id, { status: v.status, containerId: v.containerId });
    } else throw new Error(`GET /v1/workspaces/${id} answered ${r.status}`);
  }
  return `agent serving; ${await checkInvariants(records, volumes)}`;
}

/** The records as the CLI left them in its state dir. */
export async function stateInvariants(stateDir: string, ids: string[], volumes: string[] = []): Promise<string> {
  const records = new Map<string, RecordView | null>();
  for (const id of ids) {
    try {
      const r = JSON.parse(await readFile(join(stateDir, 'workspaces', id, 'workspace.json'), 'utf8')) as {
        status: string;
        result: { containerId: string | null } | null;
      };
      records.set(id, { status: r.status, containerId: r.result?.containerId ?? null });
    } catch {
      records.set(id, null);
    }
  }
  return checkInvariants(records, volumes);
}
