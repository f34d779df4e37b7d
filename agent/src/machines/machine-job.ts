/**
 * `POST /v1/machines` as an accepted job: what is checked before the 202,
 * and the work the job then does (machine-up.ts, or machine-snapshot.ts
 * with a snapshot). The request's provision script and files live only in
 * the closure of the job; its record shows their count, not their content.
 */
import type { MachineJobRequest, MachineUpResult } from '../../../shared/src/api.js';
import type { SnapshotBackend } from '../backends/backend.js';
import { WarmstartError } from '../errors.js';
import type { JobProgress } from '../jobs/job-progress.js';
import { normalizeFiles, type MachineFile } from './machine-key.js';
import { assertStateSnapshots, machineSnapshotUp, type BackendTiming } from './machine-snapshot.js';
import { machineUp, type PostLaunchHook } from './machine-up.js';

/** One `machine up` asked through the API, decoded. */
export interface MachineJobInput {
  name: string;
  base: string;
  snapshot: string | null;
  provision?: { path: string; content: Buffer };
  files: MachineFile[];
}

/** What the job's record shows of the request. */
export function machineJobRequest(backend: SnapshotBackend, input: MachineJobInput): MachineJobRequest {
  return {
    backend: backend.name,
    name: input.name,
    base: input.base,
    snapshot: input.snapshot,
    files: input.files.length,
    provision: input.provision !== undefined,
  };
}

/** Refuses a file list with a relative or repeated path (400 INVALID_ARGUMENT), before any backend is asked. */
export function checkMachineInput(input: MachineJobInput): void {
  normalizeFiles(input.files);
}

/**
 * Refuses, before the job is accepted, what the backend would refuse at its
 * first step: a snapshot on a backend without state snapshots (501
 * BACKEND_UNSUPPORTED); a name taken by another machine (409
 * BACKEND_PRECONDITION), except with a snapshot, where an existing machine
 * must have that snapshot (409 otherwise). A backend that does not answer
 * throws its own error (503 BACKEND_UNAVAILABLE). The backend checks again
 * when the job runs: this is the early answer, not the guard.
 */
export async function checkMachineUp(backend: SnapshotBackend, input: MachineJobInput): Promise<void> {
  if (input.snapshot !== null) assertStateSnapshots(backend);
  const exists = (await backend.listMachines()).some((m) => m.name === input.name);
  if (!exists) return;
  if (input.snapshot === null) {
    throw new WarmstartError('BACKEND_PRECONDITION', `machine ${input.name} already exists on ${backend.name}: remove it or choose another name`);
  }
  if (!(await backend.listSnapshots(input.name)).some((s) => s.name === input.snapshot)) {
    throw new WarmstartError('BACKEND_PRECONDITION', `machine ${input.name} exists but has no snapshot ${input.snapshot}`, {
      detail: `take it with POST /v1/machines/${input.name}/snapshots?backend=${backend.name}, or remove the machine to boot it afresh`,
    });
  }
}

/** The job's work: machine up, through the snapshot when one is named. A failure removes what it made, as on the CLI. */
export function runMachineUp(
  backend: SnapshotBackend,
  input: MachineJobInput,
  o: { progress: JobProgress; postLaunch?: PostLaunchHook; lastTiming?: () => BackendTiming | undefined },
): Promise<MachineUpResult> {
  const common = {
    name: input.name,
    base: input.base,
    files: input.files,
    progress: o.progress,
    ...(input.provision ? { provision: input.provision } : {}),
  };
  if (input.snapshot !== null) {
    return machineSnapshotUp(backend, { ...common, snapshot: input.snapshot, ...(o.lastTiming ? { lastTiming: o.lastTiming } : {}) });
  }
  return machineUp(backend, { ...common, ...(o.postLaunch ? { postLaunch: o.postLaunch } : {}) });
}
