/**
 * `machine up --snapshot NAME`: one machine kept warm by a state snapshot of
 * its own. When the machine and its snapshot exist, restore it (the fast
 * path). Otherwise make the machine from the base (a cold boot where the
 * backend can do one from that base, a launch of the base image elsewhere),
 * copy the files in, run the provision script, and take the snapshot, so the
 * next call restores. Unlike the cache of machine-up.ts nothing is shared
 * between machines, so there is no post-launch hook: the machine is
 * restored as itself.
 */
import type { Machine, SnapshotBackend } from '../backends/backend.js';
import { WarmstartError } from '../errors.js';
import { NO_PROGRESS, type JobProgress } from '../jobs/job-progress.js';
import { normalizeFiles, type MachineFile } from './machine-key.js';
import { copyFileIn, runProvisionScript } from './provision.js';

/** A backend that can also cold-boot a machine from a boot image (cloud-hypervisor: vm.create + vm.boot). */
export interface ColdBootBackend {
  bootable(image: string): Promise<boolean>;
  boot(image: string, machine: string): Promise<Machine>;
}

/** Backends with VM or instance state snapshots (docker.ts throws BACKEND_UNSUPPORTED for them); checked before anything is made. */
const STATE_SNAPSHOTS: ReadonlySet<string> = new Set(['incus', 'lima', 'cloud-hypervisor']);

/** Throws BACKEND_UNSUPPORTED for a backend without state snapshots (before anything is made). */
export function assertStateSnapshots(backend: Pick<SnapshotBackend, 'name'>): void {
  if (!STATE_SNAPSHOTS.has(backend.name)) {
    throw new WarmstartError(
      'BACKEND_UNSUPPORTED',
      `the ${backend.name} backend has no state snapshots: use machine up without a snapshot (the image cache)`,
    );
  }
}

function canColdBoot(backend: SnapshotBackend): backend is SnapshotBackend & ColdBootBackend {
  const b = backend as Partial<ColdBootBackend>;
  return typeof b.boot === 'function' && typeof b.bootable === 'function';
}

/** A backend's own measure of a launch, boot or restore (cloud-hypervisor's RestoreTiming). */
export interface BackendTiming {
  operation: string;
  restoreToReadyMs: number;
  [field: string]: number | string;
}

export interface MachineSnapshotUpOptions {
  name: string;
  base: string;
  snapshot: string;
  provision?: { path: string; content: Buffer };
  files?: MachineFile[];
  /** the backend's timing of the last launch/boot/restore of `name`, when it reports one */
  lastTiming?: () => BackendTiming | undefined;
  /** told each phase as it runs (the API's job events); default: nobody */
  progress?: JobProgress;
  now?: () => number;
}

/** The JSON result of `machine up --snapshot`. */
export interface MachineSnapshotUpResult {
  instance: string;
  snapshot: string;
  path: 'restore' | 'boot';
  /** on the boot path: whether the machine was cold-booted (vm.create + vm.boot) or launched from the base image */
  from?: 'cold-boot' | 'image';
  /** restore path: from the restore's start until the guest answered */
  restoreToReadyMs?: number;
  /** boot path: from the boot's start until the guest answered */
  bootToReadyMs?: number;
  /** boot path: files, provision script */
  provisionMs?: number;
  /** boot path: taking the snapshot */
  snapshotMs?: number;
  /** the backend's own breakdown (cloud-hypervisor: vmmStartMs, restoreMs, readyMs, ...) */
  timing?: BackendTiming;
  /** wall time of the whole call */
  ms: number;
}

export async function machineSnapshotUp(backend: SnapshotBackend, opts: MachineSnapshotUpOptions): Promise<MachineSnapshotUpResult> {
  const now = opts.now ?? (() => performance.now());
  const progress = opts.progress ?? NO_PROGRESS;
  const started = now();
  const files = normalizeFiles(opts.files ?? []);
  const timing = (operation: string): BackendTiming | undefined => {
    const t = opts.lastTiming?.();
    return t && t.operation === operation ? t : undefined;
  };
  assertStateSnapshots(backend);
  const machine = (await backend.listMachines()).find((m) => m.name === opts.name);

  if (machine) {
    const snapshots = await backend.listSnapshots(opts.name);
    if (!snapshots.some((s) => s.name === opts.snapshot)) {
      throw new WarmstartError('BACKEND_PRECONDITION', `machine ${opts.name} exists but has no snapshot ${opts.snapshot}`, {
        detail: `take it with: warmstart snapshot create --machine ${opts.name} --name ${opts.snapshot}, or remove the machine to boot it afresh`,
      });
    }
    progress.note(`machine ${opts.name} has snapshot ${opts.snapshot}: restoring it`);
    const t0 = now();
    await progress.phase('restore', () => backend.restore(opts.name, opts.snapshot));
    const wall = Math.round(now() - t0);
    const t = timing('restore');
    return {
      instance: opts.name,
      snapshot: opts.snapshot,
      path: 'restore',
      restoreToReadyMs: t ? t.restoreToReadyMs : wall,
      ...(t ? { timing: t } : {}),
      ms: Math.round(now() - started),
    };
  }

  const cold = canColdBoot(backend) && (await backend.bootable(opts.base));
  progress.note(
    `no machine ${opts.name} yet: ${cold ? 'cold-booting' : 'launching'} ${opts.base}, provisioning, then taking snapshot ${opts.snapshot}`,
  );
  const t0 = now();
  // Neither throws after creating anything that is not ours: a taken name is refused first.
  if (cold && canColdBoot(backend)) await progress.phase('boot', () => backend.boot(opts.base, opts.name));
  else await progress.phase('launch', () => backend.launch(opts.base, opts.name));
  const wall = Math.round(now() - t0);
  const t = timing(cold ? 'boot' : 'launch');
  try {
    const p0 = now();
    if (files.length) {
      await progress.phase('files', async () => {
        for (const f of files) await copyFileIn(backend, opts.name, f);
      });
    }
    const script = opts.provision;
    if (script) await progress.phase('provision', () => runProvisionScript(backend, opts.name, script.content, script.path));
    const s0 = now();
    await progress.phase('snapshot', () => backend.snapshot(opts.name, opts.snapshot));
    const s1 = now();
    return {
      instance: opts.name,
      snapshot: opts.snapshot,
      path: 'boot',
      from: cold ? 'cold-boot' : 'image',
      bootToReadyMs: t ? t.restoreToReadyMs : wall,
      provisionMs: Math.round(s0 - p0),
      snapshotMs: Math.round(s1 - s0),
      ...(t ? { timing: t } : {}),
      ms: Math.round(now() - started),
    };
  } catch (err) {
    // no half-provisioned machine without its snapshot: the next call boots afresh
    await backend.removeMachine(opts.name).catch(() => undefined); // the original error is the one to report
    throw err;
  }
}
