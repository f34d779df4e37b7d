import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { WarmstartError, isWarmstartError } from '../errors.js';
import { unlessMissing } from '../util/best-effort.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import type { ExecResult, Machine, MachineImage, SnapshotBackend, StateSnapshot } from './backend.js';
import type { ChVmConfig, CloudHypervisorApi } from './cloud-hypervisor-api.js';
import {
  defaultHostHooks,
  spawnCloudHypervisor,
  unconfiguredGuest,
  type CloudHypervisorGuest,
  type HostHooks,
  type StartVmm,
} from './cloud-hypervisor-host.js';
import { VmmControl } from './cloud-hypervisor-vmm.js';
import {
  ChLayout,
  checkName,
  copyDisk,
  checkSocketPath,
  copyDisksInto,
  defaultTapName,
  exists,
  planRestore,
  readChConfig,
  readMeta,
  stageRestore,
  writeMeta,
  type RestorePlan,
  type SnapshotMeta,
} from './cloud-hypervisor-layout.js';

/** The slice of a pino logger the backend uses. */
export interface ChBackendLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * How long a restore took; the DESIGN target is restoreToReadyMs < 5000
 * (SSH-ready). A cold boot reports the same fields: restoreMs is then
 * vm.create + vm.boot, restoreToReadyMs its boot-to-ready time.
 */
export interface RestoreTiming {
  machine: string;
  operation: 'launch' | 'restore' | 'boot';
  vmmStartMs: number;
  /** vm.restore + vm.resume (a boot: vm.create + vm.boot) */
  restoreMs: number;
  /** resume until the guest answers its readiness probe */
  readyMs: number;
  /** fresh VMM start until the guest is ready */
  restoreToReadyMs: number;
}

export interface CloudHypervisorBackendOptions {
  /** Holds `images/<image>` (snapshot dirs with their disks) and `machines/<machine>` (API socket, disks, snapshots). */
  stateDir: string;
  /** Starts a fresh VMM on an API socket; default spawns `cloud-hypervisor --api-socket`. */
  startVmm?: StartVmm;
  /** The channel into the guest (SSH/vsock); default: none, every exec says so. */
  guest?: CloudHypervisorGuest;
  /** Host and guest work around snapshots and restores; missing ones fall back to checks that fail clearly. */
  hooks?: Partial<HostHooks>;
  /** The TAP a machine's NIC N uses (≤15 bytes); default `wst<hash8><N>`. */
  tapName?: (machine: string, index: number) => string;
  /** The directory virtiofsd shares for a machine's virtiofs tag, handed to hooks.ensureVirtiofsd. */
  virtiofsSharedDir?: (machine: string, tag: string) => string | undefined;
  /** vm.restore `prefault`: populate guest RAM up front (slower restore, no faults after). */
  prefault?: boolean;
  /** Bounded wait for the guest's readiness probe after a resume; default 60 s. */
  readyTimeoutMs?: number;
  /** Bounded wait for a fresh VMM's API to answer, and for a stopped one to go; default 10 s. */
  vmmTimeoutMs?: number;
  /** Per API request; default 120 s (a snapshot writes all of guest RAM). */
  apiTimeoutMs?: number;
  logger?: ChBackendLogger;
  /** Called after every launch and restore with its timing. */
  onTiming?: (timing: RestoreTiming) => void;
  now?: () => number;
}

/** A boot image's VM config: `images/<image>/vm.json`, the body of vm.create (relative disk paths are the image dir's). */
export const BOOT_CONFIG = 'vm.json';

/**
 * The MAC of a booted machine's NIC N: 52:54:00 and the first three bytes of
 * sha256("<machine>:<N>"), so a host hook can work it out too
 * (deploy/cloud-hypervisor/warmstart-ch-hook).
 */
export function machineMac(machine: string, index: number): string {
  const hex = createHash('sha256').update(`${machine}:${index}`).digest('hex');
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

const silent: ChBackendLogger = { info: () => undefined, warn: () => undefined };

/** A host hook's own failure becomes BACKEND_PRECONDITION; a typed one passes through. */
function hookFailed(message: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof WarmstartError) throw err;
    throw new WarmstartError('BACKEND_PRECONDITION', message, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  };
}

/**
 * SnapshotBackend over cloud-hypervisor's REST API: an image and a machine
 * snapshot are both CH snapshot dirs plus disk copies; launching and restoring
 * are the same restore into a fresh VMM. Upstream rules honoured here (see
 * docs/machines.md "cloud-hypervisor"): pause before vm.snapshot, destination dir made first, restore
 * only into an empty VMM, resume after restore, virtiofsd sockets and TAPs
 * made to exist and disks put in place before vm.restore, credentials wiped
 * before a capture and injected after.
 */
export class CloudHypervisorBackend implements SnapshotBackend {
  readonly name = 'cloud-hypervisor' as const;
  readonly layout: ChLayout;
  private readonly vmms: VmmControl;
  private readonly guest: CloudHypervisorGuest;
  private readonly hooks: HostHooks;
  private readonly tapName: (machine: string, index: number) => string;
  private readonly logger: ChBackendLogger;
  private readonly now: () => number;
  private readonly queues = new KeyedQueue();

  constructor(private readonly options: CloudHypervisorBackendOptions) {
    this.layout = new ChLayout(options.stateDir);
    this.guest = options.guest ?? unconfiguredGuest;
    const hooks = options.hooks ?? {};
    this.hooks = {
      ensureTap: hooks.ensureTap ?? defaultHostHooks.ensureTap,
      ensureVirtiofsd: hooks.ensureVirtiofsd ?? defaultHostHooks.ensureVirtiofsd,
      wipeCredentials: hooks.wipeCredentials ?? defaultHostHooks.wipeCredentials,
      injectCredentials: hooks.injectCredentials ?? defaultHostHooks.injectCredentials,
    };
    this.tapName = options.tapName ?? defaultTapName;
    this.logger = options.logger ?? silent;
    this.now = options.now ?? Date.now;
    this.vmms = new VmmControl({
      layout: this.layout,
      startVmm: options.startVmm ?? spawnCloudHypervisor(),
      guest: this.guest,
      vmmTimeoutMs: options.vmmTimeoutMs ?? 10_000,
      readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
      now: this.now,
      ...(options.apiTimeoutMs === undefined ? {} : { apiTimeoutMs: options.apiTimeoutMs }),
    });
  }

  /** The API of a machine's VMM (for tests and diagnostics). */
  api(machine: string): CloudHypervisorApi {
    return this.vmms.api(machine);
  }

  async launch(image: string, machine: string): Promise<Machine> {
    checkName('image', image);
    checkName('machine', machine);
    return this.exclusive(machine, async () => {
      const source = this.layout.image(image);
      const recorded = await readChConfig(source);
      if (!recorded) throw new WarmstartError('IMAGE_NOT_FOUND', `no cloud-hypervisor image ${image}`);
      const dir = this.layout.machine(machine);
      if (await exists(dir)) throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} already exists`);
      const plan = planRestore(this.layout, machine, source, recorded, await readMeta(source), this.tapName);
      await mkdir(dir, { recursive: true });
      try {
        await writeFile(join(dir, 'machine.json'), JSON.stringify({ image, createdAt: new Date(this.now()).toISOString() }));
        await this.ensureTaps(machine, plan);
        await this.ensureVirtiofsd(machine, plan);
        await this.restoreInto(machine, plan, source, 'launch');
      } catch (err) {
        await this.discard(machine);
        throw err;
      }
      return { name: machine, state: 'running' };
    });
  }

  /** Whether `images/<image>` holds a boot config ({@link BOOT_CONFIG}) that {@link boot} can cold-boot. */
  async bootable(image: string): Promise<boolean> {
    checkName('image', image);
    return (await this.readBootConfig(image)) !== null;
  }

  /**
   * A cold boot: the image's {@link BOOT_CONFIG}, with its disks, virtiofs
   * sockets and TAPs made the machine's own (as for a restore), into a fresh
   * VMM: vm.create, vm.boot, the readiness probe, credentials injected. The
   * base disks are copied, never booted in place. Reports its timing through
   * onTiming with operation 'boot'. A failure leaves no machine behind.
   */
  async boot(image: string, machine: string): Promise<Machine> {
    checkName('image', image);
    checkName('machine', machine);
    return this.exclusive(machine, async () => {
      const recorded = await this.readBootConfig(image);
      if (!recorded)
        throw new WarmstartError('IMAGE_NOT_FOUND', `no cloud-hypervisor boot image ${image} (no ${BOOT_CONFIG} in ${this.layout.image(image)})`);
      const dir = this.layout.machine(machine);
      if (await exists(dir)) throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} already exists`);
      const plan = planRestore(this.layout, machine, this.layout.image(image), recorded, null, this.tapName);
      // A booted guest learns its MAC now (a restore must keep the recorded one): one per machine, so DHCP tells them apart.
      if (plan.config.net) plan.config.net = plan.config.net.map((n, i) => (n.vhost_user ? n : { ...n, mac: machineMac(machine, i) }));
      await mkdir(dir, { recursive: true });
      try {
        await writeFile(join(dir, 'machine.json'), JSON.stringify({ image, boot: true, createdAt: new Date(this.now()).toISOString() }));
        await this.ensureTaps(machine, plan);
        await this.ensureVirtiofsd(machine, plan);
        for (const d of plan.disks) {
          await mkdir(dirname(d.to), { recursive: true });
          await copyDisk(d.from, d.to).catch((cause: NodeJS.ErrnoException) => {
            if (cause.code !== 'ENOENT') throw cause;
            throw new WarmstartError('IMAGE_NOT_FOUND', `disk ${d.from} of boot image ${image} is missing`, { cause });
          });
        }
        const started = this.now();
        await this.vmms.start(machine);
        const vmmUp = this.now();
        const api = this.api(machine);
        try {
          await api.create(plan.config);
          await api.boot();
        } catch (err) {
          await this.vmms.stop(machine).catch(() => undefined); // the error above is the one to report
          throw err;
        }
        const booted = this.now();
        await this.vmms.waitReady(machine);
        const ready = this.now();
        await this.hooks.injectCredentials(machine);
        const timing: RestoreTiming = {
          machine,
          operation: 'boot',
          vmmStartMs: vmmUp - started,
          restoreMs: booted - vmmUp,
          readyMs: ready - booted,
          restoreToReadyMs: ready - started,
        };
        this.logger.info(timing, 'cloud-hypervisor machine booted');
        this.options.onTiming?.(timing);
      } catch (err) {
        await this.discard(machine);
        throw err;
      }
      return { name: machine, state: 'running' };
    });
  }

  private async readBootConfig(image: string): Promise<ChVmConfig | null> {
    const dir = this.layout.image(image);
    const text = await unlessMissing(readFile(join(dir, BOOT_CONFIG), 'utf8'), null);
    if (text === null) return null;
    let config: ChVmConfig;
    try {
      config = JSON.parse(text) as ChVmConfig;
    } catch (cause) {
      throw new WarmstartError('BACKEND_ERROR', `unreadable ${BOOT_CONFIG} in ${dir}`, { cause });
    }
    if (config.disks) config.disks = config.disks.map((d) => (d.path && !isAbsolute(d.path) ? { ...d, path: resolve(dir, d.path) } : d));
    return config;
  }

  async exec(machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> {
    await this.requireMachine(machine);
    return this.guest.exec(machine, argv, options.input);
  }

  async captureImage(machine: string, image: string, properties: Record<string, string> = {}): Promise<MachineImage> {
    checkName('image', image);
    return this.exclusive(machine, async () => {
      await this.requireMachine(machine);
      const dest = this.layout.image(image);
      if (await exists(dest)) throw new WarmstartError('BACKEND_PRECONDITION', `image ${image} already exists`);
      await mkdir(this.layout.imagesDir, { recursive: true });
      const meta = await this.capture(machine, dest, properties);
      return { name: image, properties: meta.properties, createdAt: meta.createdAt };
    });
  }

  async imageExists(image: string): Promise<boolean> {
    checkName('image', image);
    return (await readChConfig(this.layout.image(image))) !== null;
  }

  async listImages(prefix = ''): Promise<MachineImage[]> {
    const images: MachineImage[] = [];
    for (const name of await this.entries(this.layout.imagesDir)) {
      if (!name.startsWith(prefix) || !(await this.imageExists(name))) continue;
      const meta = await readMeta(this.layout.image(name));
      images.push({ name, properties: meta?.properties ?? {}, createdAt: meta?.createdAt ?? (await this.mtime(this.layout.image(name))) });
    }
    return images;
  }

  async removeImage(image: string): Promise<void> {
    checkName('image', image);
    const dir = this.layout.image(image);
    if (!(await exists(dir))) throw new WarmstartError('IMAGE_NOT_FOUND', `no cloud-hypervisor image ${image}`);
    await rm(dir, { recursive: true, force: true });
  }

  async listMachines(): Promise<Machine[]> {
    const machines: Machine[] = [];
    for (const name of await this.entries(this.layout.machinesDir)) {
      machines.push({ name, state: await this.vmms.state(name) });
    }
    return machines;
  }

  async removeMachine(machine: string): Promise<void> {
    await this.requireMachine(machine);
    await this.exclusive(machine, () => this.discard(machine));
  }

  async snapshot(machine: string, name: string): Promise<StateSnapshot> {
    checkName('snapshot', name);
    return this.exclusive(machine, async () => {
      await this.requireMachine(machine);
      const dest = this.layout.snapshot(machine, name);
      if (await exists(dest)) throw new WarmstartError('BACKEND_PRECONDITION', `snapshot ${name} of ${machine} already exists`);
      await mkdir(this.layout.snapshots(machine), { recursive: true });
      const meta = await this.capture(machine, dest, {});
      return { machine, name, createdAt: meta.createdAt };
    });
  }

  async restore(machine: string, name: string): Promise<void> {
    checkName('snapshot', name);
    await this.exclusive(machine, async () => {
      await this.requireMachine(machine);
      const source = this.layout.snapshot(machine, name);
      const recorded = await readChConfig(source);
      if (!recorded) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of machine ${machine}`);
      const plan = planRestore(this.layout, machine, source, recorded, await readMeta(source), this.tapName);
      // A TAP outlives its VMM, so check before stopping the machine; virtiofsd serves one VMM and goes with it.
      await this.ensureTaps(machine, plan);
      await this.vmms.stop(machine);
      await this.ensureVirtiofsd(machine, plan);
      await this.restoreInto(machine, plan, source, 'restore');
    });
  }

  async listSnapshots(machine: string): Promise<StateSnapshot[]> {
    await this.requireMachine(machine);
    const snapshots: StateSnapshot[] = [];
    for (const name of await this.entries(this.layout.snapshots(machine))) {
      const dir = this.layout.snapshot(machine, name);
      if ((await readChConfig(dir)) === null) continue;
      snapshots.push({ machine, name, createdAt: (await readMeta(dir))?.createdAt ?? (await this.mtime(dir)) });
    }
    return snapshots;
  }

  async deleteSnapshot(machine: string, name: string): Promise<void> {
    checkName('snapshot', name);
    await this.requireMachine(machine);
    const dir = this.layout.snapshot(machine, name);
    if (!(await exists(dir))) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of machine ${machine}`);
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * wipe credentials → (pause) → vm.snapshot into a fresh dir → copy disks
   * while paused → resume → inject credentials. The dir is made first (CH
   * refuses a missing destination) under a temporary name, renamed when whole.
   * A machine found paused is snapshotted and left paused.
   */
  private async capture(machine: string, dest: string, properties: Record<string, string>): Promise<SnapshotMeta> {
    const api = this.api(machine);
    const info = await api.info();
    if (info.state !== 'Running' && info.state !== 'Paused') {
      throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} is ${info.state}; only a running or paused VM can be snapshotted`);
    }
    const tmp = join(dirname(dest), `.tmp-${basename(dest)}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp, { recursive: true });
    let failure: unknown;
    let paused = false;
    let meta: SnapshotMeta | undefined;
    try {
      await this.hooks.wipeCredentials(machine);
      if (info.state === 'Running') {
        await api.pause();
        paused = true;
      }
      await api.snapshot(tmp);
      const disks = await copyDisksInto(info.config, tmp);
      meta = { createdAt: new Date(this.now()).toISOString(), properties, disks, machine };
      await writeMeta(tmp, meta);
      await rename(tmp, dest);
    } catch (err) {
      failure = err;
      await rm(tmp, { recursive: true, force: true });
    }
    try {
      if (paused) await api.resume();
      await this.hooks.injectCredentials(machine);
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined || !meta) throw failure;
    return meta;
  }

  /** Fresh VMM → vm.restore → vm.resume → readiness probe → inject credentials; host things already ensured. */
  private async restoreInto(machine: string, plan: RestorePlan, source: string, operation: RestoreTiming['operation']): Promise<void> {
    const restoreDir = this.layout.restoreDir(machine);
    await stageRestore(plan, source, restoreDir);
    const started = this.now();
    await this.vmms.start(machine);
    const vmmUp = this.now();
    const api = this.api(machine);
    try {
      await api.restore(restoreDir, this.options.prefault === undefined ? {} : { prefault: this.options.prefault });
      await api.resume(); // a restored VM stays paused until resumed
    } catch (err) {
      await this.vmms.stop(machine).catch(() => undefined); // the error above is the one to report
      // the VMM could not read the snapshot: for a machine snapshot, say so in its own words
      if (operation === 'restore' && isWarmstartError(err, 'IMAGE_NOT_FOUND')) {
        throw new WarmstartError('SNAPSHOT_NOT_FOUND', `the snapshot of machine ${machine} is incomplete`, { cause: err, detail: err.detail });
      }
      throw err;
    }
    const resumed = this.now();
    await this.vmms.waitReady(machine);
    const ready = this.now();
    await this.hooks.injectCredentials(machine);
    const timing: RestoreTiming = {
      machine,
      operation,
      vmmStartMs: vmmUp - started,
      restoreMs: resumed - vmmUp,
      readyMs: ready - resumed,
      restoreToReadyMs: ready - started,
    };
    if (timing.restoreToReadyMs > 5000) this.logger.warn(timing, 'cloud-hypervisor restore missed the 5 s ready target');
    else this.logger.info(timing, 'cloud-hypervisor machine restored');
    this.options.onTiming?.(timing);
  }

  private async ensureTaps(machine: string, plan: RestorePlan): Promise<void> {
    for (const tap of plan.taps) {
      await this.hooks.ensureTap(tap.name, { machine, index: tap.index }).catch(hookFailed(`TAP device ${tap.name} is not available`));
    }
  }

  /** The hook starts virtiofsd; the socket is then checked, so a hook that did nothing fails here, not inside vm.restore. */
  private async ensureVirtiofsd(machine: string, plan: RestorePlan): Promise<void> {
    for (const s of plan.sockets) {
      checkSocketPath(s.path);
      await this.hooks
        .ensureVirtiofsd(s.path, this.options.virtiofsSharedDir?.(machine, s.tag), { machine, index: s.index, tag: s.tag })
        .catch(hookFailed(`virtiofsd could not be started on ${s.path}`));
      const listening = await stat(s.path).then(
        (st) => st.isSocket(),
        () => false,
      );
      if (!listening) {
        throw new WarmstartError('BACKEND_PRECONDITION', `virtiofsd is not listening on ${s.path} (virtiofs tag ${s.tag})`, {
          detail: 'cloud-hypervisor reconnects to the recorded virtiofs sockets on restore; start virtiofsd there first',
        });
      }
    }
  }

  private async discard(machine: string): Promise<void> {
    await this.vmms.stop(machine).catch((err: unknown) => this.logger.warn({ machine, err }, 'could not stop the VMM'));
    await rm(this.layout.machine(machine), { recursive: true, force: true });
  }

  private async requireMachine(machine: string): Promise<void> {
    checkName('machine', machine);
    if (!(await exists(this.layout.machine(machine)))) {
      throw new WarmstartError('MACHINE_NOT_FOUND', `no cloud-hypervisor machine ${machine}`);
    }
  }

  /** Valid names in a dir; half-written `.tmp-*` dirs never match. */
  private async entries(dir: string): Promise<string[]> {
    const names = await unlessMissing(readdir(dir), [] as string[]);
    return names.filter((n) => /^[A-Za-z0-9]/.test(n)).sort();
  }

  private async mtime(path: string): Promise<string | null> {
    return stat(path).then(
      (s) => s.mtime.toISOString(),
      () => null,
    );
  }

  /** One operation per machine at a time: a snapshot and a restore of one VM must not interleave. */
  private exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(key, fn);
  }
}
