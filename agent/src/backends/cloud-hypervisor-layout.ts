import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { WarmstartError } from '../errors.js';
import type { ChVmConfig } from './cloud-hypervisor-api.js';
import { unlessMissing } from '../util/best-effort.js';

/**
 * Where the cloud-hypervisor backend keeps things under `stateDir`, and the
 * file work around a snapshot directory:
 *
 *   images/<image>/                 a CH snapshot (config.json, state.json, memory-ranges)
 *                  disks/diskN.ext  the disks, copied while the VM was paused (CH never snapshots disks)
 *                  warmstart.json   createdAt, properties, disk file names
 *   machines/<m>/api.sock           the VMM's API socket
 *                disks/diskN.ext    the machine's own disks
 *                restore/           the source handed to vm.restore: config.json rewritten for this machine
 *                snapshots/<name>/  same layout as an image
 */

export const CH_CONFIG = 'config.json';
export const META = 'warmstart.json';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** sun_path is 108 bytes with the NUL. */
const MAX_SOCKET_PATH = 107;

export interface SnapshotMeta {
  createdAt: string;
  properties: Record<string, string>;
  /** file names under disks/, by disk index */
  disks: string[];
  machine?: string;
}

/** Names become path components: refuse anything that is not a plain one. */
export function checkName(kind: 'machine' | 'image' | 'snapshot', name: string): void {
  if (!NAME.test(name)) {
    throw new WarmstartError('INVALID_ARGUMENT', `invalid ${kind} name: ${JSON.stringify(name)}`, {
      detail: `a ${kind} name matches ${NAME.source}`,
    });
  }
}

export function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new WarmstartError('BACKEND_PRECONDITION', `unix socket path too long (${Buffer.byteLength(path)} > ${MAX_SOCKET_PATH} bytes)`, {
      detail: `${path}: choose a shorter stateDir or machine name`,
    });
  }
}

export class ChLayout {
  readonly imagesDir: string;
  readonly machinesDir: string;

  constructor(readonly stateDir: string) {
    this.imagesDir = join(stateDir, 'images');
    this.machinesDir = join(stateDir, 'machines');
  }

  image(name: string): string {
    return join(this.imagesDir, name);
  }
  machine(name: string): string {
    return join(this.machinesDir, name);
  }
  apiSocket(machine: string): string {
    return join(this.machine(machine), 'api.sock');
  }
  restoreDir(machine: string): string {
    return join(this.machine(machine), 'restore');
  }
  snapshots(machine: string): string {
    return join(this.machine(machine), 'snapshots');
  }
  snapshot(machine: string, name: string): string {
    return join(this.snapshots(machine), name);
  }
  /** The machine's disk N keeps the recorded extension, so restoring the machine's own snapshot maps every path to itself. */
  disk(machine: string, index: number, recordedPath: string): string {
    return join(this.machine(machine), 'disks', `disk${index}${extname(recordedPath)}`);
  }
  virtiofsSocket(machine: string, index: number): string {
    return join(this.machine(machine), `virtiofs${index}.sock`);
  }
}

/** A TAP name per machine and NIC: at most 15 bytes (IFNAMSIZ), stable across restores of the same machine. */
export function defaultTapName(machine: string, index: number): string {
  return `wst${createHash('sha256').update(machine).digest('hex').slice(0, 8)}${index}`;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The VM config recorded in a snapshot dir, or null when the dir holds no snapshot. */
export async function readChConfig(dir: string): Promise<ChVmConfig | null> {
  const text = await unlessMissing(readFile(join(dir, CH_CONFIG), 'utf8'), null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as ChVmConfig;
  } catch (cause) {
    throw new WarmstartError('BACKEND_ERROR', `unreadable ${CH_CONFIG} in ${dir}`, { cause });
  }
}

export async function readMeta(dir: string): Promise<SnapshotMeta | null> {
  const text = await unlessMissing(readFile(join(dir, META), 'utf8'), null);
  return text === null ? null : (JSON.parse(text) as SnapshotMeta);
}

export async function writeMeta(dir: string, meta: SnapshotMeta): Promise<void> {
  await writeFile(join(dir, META), `${JSON.stringify(meta, null, 2)}\n`);
}

/** Reflink where the filesystem can (btrfs, XFS), a plain copy elsewhere: FICLONE falls back by itself. */
export async function copyDisk(from: string, to: string): Promise<void> {
  await copyFile(from, to, constants.COPYFILE_FICLONE);
}

/** Copies the running config's disks into `dir/disks/` and returns their file names by index. */
export async function copyDisksInto(config: ChVmConfig, dir: string): Promise<string[]> {
  const names: string[] = [];
  const disks = config.disks ?? [];
  if (disks.length > 0) await mkdir(join(dir, 'disks'), { recursive: true });
  for (const [i, d] of disks.entries()) {
    if (!d.path) {
      names.push(''); // vhost-user disk: its backend owns the data
      continue;
    }
    const name = `disk${i}${extname(d.path)}`;
    await copyDisk(d.path, join(dir, 'disks', name));
    names.push(name);
  }
  return names;
}

/** What restoring `sourceDir` into a machine takes: its own config and the host things that must exist first. */
export interface RestorePlan {
  config: ChVmConfig;
  disks: Array<{ from: string; to: string }>;
  taps: Array<{ name: string; index: number }>;
  sockets: Array<{ path: string; tag: string; index: number }>;
}

/**
 * Rewrites a recorded config for `machine`: disks, virtiofs sockets and TAPs
 * become the machine's own, so two machines restored from one image never
 * share them (CH locks disk images; a vhost-user socket and a TAP serve one
 * VMM). config.json is meant to be edited between snapshot and restore
 * (docs/snapshot_restore.md); its disk paths are absolute.
 */
export function planRestore(
  layout: ChLayout,
  machine: string,
  sourceDir: string,
  recorded: ChVmConfig,
  meta: SnapshotMeta | null,
  tapName: (machine: string, index: number) => string,
): RestorePlan {
  const plan: RestorePlan = { config: { ...recorded }, disks: [], taps: [], sockets: [] };
  plan.config.disks = (recorded.disks ?? []).map((d, i) => {
    if (!d.path) return d;
    const copied = meta?.disks[i];
    // A bare CH snapshot (no warmstart.json) has no disk copies: its disks are still at the recorded paths.
    const from = copied ? join(sourceDir, 'disks', copied) : d.path;
    const to = layout.disk(machine, i, d.path);
    plan.disks.push({ from, to });
    return { ...d, path: to };
  });
  plan.config.fs = (recorded.fs ?? []).map((f, i) => {
    const path = layout.virtiofsSocket(machine, i);
    plan.sockets.push({ path, tag: f.tag, index: i });
    return { ...f, socket: path };
  });
  plan.config.net = (recorded.net ?? []).map((n, i) => {
    if (n.vhost_user) return n;
    if (!n.tap) {
      throw new WarmstartError('BACKEND_UNSUPPORTED', `network device ${n.id ?? i} has no TAP name`, {
        detail: 'a VM whose NICs were passed as file descriptors needs net_fds on restore, which this backend does not send',
      });
    }
    const name = tapName(machine, i);
    plan.taps.push({ name, index: i });
    return { ...n, tap: name };
  });
  if (recorded.disks === undefined) delete plan.config.disks;
  if (recorded.fs === undefined) delete plan.config.fs;
  if (recorded.net === undefined) delete plan.config.net;
  return plan;
}

/**
 * Builds `restoreDir`: the rewritten config.json, links to the rest of the
 * snapshot (state.json, memory-ranges: read once by the VMM, never copied),
 * and the disks copied to the machine's own paths.
 */
export async function stageRestore(plan: RestorePlan, sourceDir: string, restoreDir: string): Promise<void> {
  await rm(restoreDir, { recursive: true, force: true });
  await mkdir(restoreDir, { recursive: true });
  for (const entry of await readdir(sourceDir)) {
    if (entry === CH_CONFIG || entry === META || entry === 'disks') continue;
    await symlink(join(sourceDir, entry), join(restoreDir, entry));
  }
  await writeFile(join(restoreDir, CH_CONFIG), JSON.stringify(plan.config, null, 2));
  for (const d of plan.disks) {
    await mkdir(join(d.to, '..'), { recursive: true });
    if (d.from === d.to) continue;
    await copyDisk(d.from, d.to).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'ENOENT') throw cause;
      throw new WarmstartError('BACKEND_PRECONDITION', `disk ${d.from} is missing`, {
        cause,
        detail: `CH snapshots hold no disks; ${sourceDir} needs its disk copies (or the disks at the recorded paths)`,
      });
    });
  }
}
