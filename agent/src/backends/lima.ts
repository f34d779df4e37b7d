import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { WarmstartError } from '../errors.js';
import type { ExecResult, Machine, MachineImage, MachineState, SnapshotBackend, StateSnapshot } from './backend.js';
import { failureMessage, type LimaInstance, Limactl, type LimactlOptions, logMessages, parseVersion } from './lima-cli.js';
import { copyInstanceDir, repointBackingFiles } from './lima-copy.js';
import { LimaSnapshots } from './lima-snapshots.js';
import { unlessMissing } from '../util/best-effort.js';

/**
 * Marks a Lima instance as an image warmstart made: `<instance dir>/warmstart-image.json`
 * holds its properties and creation time. Launching removes it from the copy.
 */
export const IMAGE_MARKER = 'warmstart-image.json';

export interface LimaBackendOptions extends LimactlOptions {
  /**
   * How an instance is duplicated: 'auto' (default) uses `limactl clone` when
   * the tool has it (Lima >= 2.0, asked once through `--version`, else
   * `clone --help`) and otherwise copies the instance dir with reflinks;
   * 'clone' and 'copy' force one.
   */
  copyMode?: 'auto' | 'clone' | 'copy';
  /** `limactl start` (boot and provisioning); Lima's own default wait is 10 minutes */
  startTimeoutMs?: number;
  /** `limactl stop` before a capture (Lima waits up to 3 minutes itself) */
  stopTimeoutMs?: number;
  /** one command run by `exec` */
  execTimeoutMs?: number;
  /** the clock for an image's createdAt */
  now?: () => Date;
}

const stateOf = (status: string): MachineState => (status === 'Running' ? 'running' : status === 'Stopped' ? 'stopped' : 'unknown');

/** Lima's instance names (dirnames.ValidateInstName): containerd identifiers, at most 76, no .yml/.yaml. */
function checkName(name: string, what: 'machine' | 'image'): void {
  if (name.length > 76 || !/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(name) || /\.ya?ml$/i.test(name)) {
    throw new WarmstartError('INVALID_ARGUMENT', `invalid Lima ${what} name ${JSON.stringify(name)}`);
  }
}

/**
 * SnapshotBackend over `limactl`. An image is a stopped instance: a template
 * instance set up by hand, or one captured here (those carry IMAGE_MARKER and
 * are the ones listImages and removeImage deal with). A machine is any other
 * instance. Launch = duplicate the image's instance (see copyMode), make its
 * disks its own (a pre-2.1 qcow2 `diffdisk` points at the source's
 * `basedisk` by absolute path, even after `limactl clone`: repointed at the
 * copy's own, reflinked, `basedisk`), then `limactl start`. So an image can
 * be deleted while machines launched from it live on.
 */
export class LimaBackend implements SnapshotBackend {
  readonly name = 'lima' as const;
  private readonly cli: Limactl;
  private readonly snapshots: LimaSnapshots;
  private cloneSupport: Promise<boolean> | undefined;

  constructor(private readonly options: LimaBackendOptions = {}) {
    this.cli = new Limactl(options);
    this.snapshots = new LimaSnapshots(this.cli, (m) => this.instance(m, 'MACHINE_NOT_FOUND'));
  }

  async launch(image: string, machine: string): Promise<Machine> {
    checkName(image, 'image');
    checkName(machine, 'machine');
    const all = await this.cli.list();
    const src = all.find((i) => i.name === image);
    if (!src) throw new WarmstartError('IMAGE_NOT_FOUND', `no Lima instance ${image} to launch from`);
    if (src.status === 'Running') throw new WarmstartError('BACKEND_PRECONDITION', `image ${image} is a running instance; stop it first`);
    if (all.some((i) => i.name === machine)) throw new WarmstartError('BACKEND_PRECONDITION', `Lima instance ${machine} already exists`);
    const dir = await this.duplicate(src, machine);
    await rm(join(dir, IMAGE_MARKER), { force: true });
    const r = await this.cli.run(['start', '--tty=false', machine], { timeoutMs: this.options.startTimeoutMs ?? 10 * 60_000 });
    if (r.exitCode !== 0) {
      await this.cli.run(['delete', '-f', machine]).catch(() => undefined); // the error above is the one to report
      throw new WarmstartError('BACKEND_ERROR', `limactl start ${machine} failed`, { detail: failureMessage(r) });
    }
    return { name: machine, state: 'running' };
  }

  async exec(machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new WarmstartError('INVALID_ARGUMENT', 'exec needs a command');
    // Checked first: Lima 2.x offers to start a stopped instance and would read the answer from our stdin.
    const inst = await this.instance(machine, 'MACHINE_NOT_FOUND');
    if (inst.status !== 'Running') throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} is ${inst.status}, not running`);
    const r = await this.cli.run(['shell', '--workdir', '/', machine, '--', ...argv], {
      input: options.input ?? '',
      timeoutMs: this.options.execTimeoutMs ?? 30 * 60_000,
    });
    if (r.timedOut) throw new WarmstartError('BACKEND_ERROR', `command in ${machine} timed out`);
    if (r.exitCode !== 0) {
      const fatal = logMessages(r.stderr, 'fatal').at(-1) ?? '';
      if (/does not exist/.test(fatal)) throw new WarmstartError('MACHINE_NOT_FOUND', `no Lima instance ${machine}`, { detail: fatal });
      if (/is stopped/.test(fatal)) throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} is not running`, { detail: fatal });
    }
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async captureImage(machine: string, image: string, properties: Record<string, string> = {}): Promise<MachineImage> {
    checkName(machine, 'machine');
    checkName(image, 'image');
    const all = await this.cli.list();
    const src = all.find((i) => i.name === machine);
    if (!src) throw new WarmstartError('MACHINE_NOT_FOUND', `no Lima instance ${machine}`);
    if (all.some((i) => i.name === image)) throw new WarmstartError('BACKEND_PRECONDITION', `Lima instance ${image} already exists`);
    if (src.status !== 'Running' && src.status !== 'Stopped') {
      throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} is ${src.status}`);
    }
    const wasRunning = src.status === 'Running';
    // clone refuses a running instance, and a copy of a running disk is not consistent
    if (wasRunning) await this.cli.ok(['stop', machine], `stop ${machine}`, { timeoutMs: this.options.stopTimeoutMs ?? 5 * 60_000 });
    const createdAt = (this.options.now ?? (() => new Date()))().toISOString();
    let failure: unknown;
    try {
      const dir = await this.duplicate(src, image);
      await writeFile(join(dir, IMAGE_MARKER), `${JSON.stringify({ properties, createdAt, source: machine }, null, 2)}\n`);
    } catch (err) {
      failure = err;
      await this.cli.run(['delete', '-f', image]).catch(() => undefined); // the error above is the one to report
    }
    if (wasRunning) {
      const r = await this.cli.run(['start', '--tty=false', machine], { timeoutMs: this.options.startTimeoutMs ?? 10 * 60_000 });
      if (r.exitCode !== 0 && failure === undefined) {
        failure = new WarmstartError('BACKEND_ERROR', `captured ${image}, but limactl start ${machine} failed`, { detail: failureMessage(r) });
      }
    }
    if (failure !== undefined) throw failure;
    return { name: image, properties: { ...properties }, createdAt };
  }

  /** True when `image` can be launched from: the instance exists and is not running. */
  async imageExists(image: string): Promise<boolean> {
    const inst = (await this.cli.list()).find((i) => i.name === image);
    return inst !== undefined && inst.status !== 'Running';
  }

  /** The images warmstart captured (instances with IMAGE_MARKER), by name prefix. */
  async listImages(prefix = ''): Promise<MachineImage[]> {
    const images: MachineImage[] = [];
    for (const inst of await this.cli.list()) {
      if (!inst.name.startsWith(prefix) || inst.status === 'Running') continue;
      const marker = await readMarker(inst.dir);
      if (marker) images.push({ name: inst.name, properties: marker.properties, createdAt: marker.createdAt });
    }
    return images;
  }

  async removeImage(image: string): Promise<void> {
    const inst = await this.instance(image, 'IMAGE_NOT_FOUND');
    if (!(await readMarker(inst.dir))) {
      throw new WarmstartError('BACKEND_PRECONDITION', `Lima instance ${image} is not an image warmstart captured; not deleting it`);
    }
    await this.cli.ok(['delete', '-f', image], `delete ${image}`);
  }

  async listMachines(): Promise<Machine[]> {
    const machines: Machine[] = [];
    for (const inst of await this.cli.list()) {
      if (!(await readMarker(inst.dir))) machines.push({ name: inst.name, state: stateOf(inst.status) });
    }
    return machines;
  }

  async removeMachine(machine: string): Promise<void> {
    const inst = await this.instance(machine, 'MACHINE_NOT_FOUND');
    if (await readMarker(inst.dir)) throw new WarmstartError('BACKEND_PRECONDITION', `${machine} is an image; use removeImage`);
    await this.cli.ok(['delete', '-f', machine], `delete ${machine}`);
  }

  snapshot(machine: string, name: string): Promise<StateSnapshot> {
    return this.snapshots.create(machine, name);
  }

  restore(machine: string, name: string): Promise<void> {
    return this.snapshots.apply(machine, name);
  }

  listSnapshots(machine: string): Promise<StateSnapshot[]> {
    return this.snapshots.list(machine);
  }

  deleteSnapshot(machine: string, name: string): Promise<void> {
    return this.snapshots.delete(machine, name);
  }

  private async instance(name: string, code: 'MACHINE_NOT_FOUND' | 'IMAGE_NOT_FOUND'): Promise<LimaInstance> {
    const inst = (await this.cli.list()).find((i) => i.name === name);
    if (!inst) throw new WarmstartError(code, `no Lima instance ${name}`);
    return inst;
  }

  /** A stopped copy of `src` named `target`, standing on its own disks; returns its dir. */
  private async duplicate(src: LimaInstance, target: string): Promise<string> {
    const dir = join(dirname(src.dir), target);
    if (await this.useClone()) {
      const r = await this.cli.run(['clone', '--tty=false', src.name, target]);
      if (r.exitCode !== 0) {
        const detail = failureMessage(r);
        const refused = /running instance|already exists/.test(detail);
        throw new WarmstartError(refused ? 'BACKEND_PRECONDITION' : 'BACKEND_ERROR', `limactl clone ${src.name} ${target} failed`, { detail });
      }
    } else {
      await copyInstanceDir(src.dir, dir, new Set([IMAGE_MARKER])).catch((err: unknown) => {
        throw new WarmstartError('BACKEND_ERROR', `copying ${src.dir} to ${dir} failed`, { detail: String(err), cause: err });
      });
    }
    try {
      await repointBackingFiles(src.dir, dir);
    } catch (err) {
      await this.cli.run(['delete', '-f', target]).catch(() => undefined); // the error above is the one to report
      throw new WarmstartError('BACKEND_ERROR', `making ${target}'s disks its own failed`, { detail: String(err), cause: err });
    }
    return dir;
  }

  private useClone(): Promise<boolean> {
    const mode = this.options.copyMode ?? 'auto';
    if (mode !== 'auto') return Promise.resolve(mode === 'clone');
    this.cloneSupport ??= this.detectClone();
    return this.cloneSupport;
  }

  private async detectClone(): Promise<boolean> {
    const v = parseVersion((await this.cli.run(['--version'], { timeoutMs: 30_000 })).stdout);
    if (v) return v[0] >= 2;
    return (await this.cli.run(['clone', '--help'], { timeoutMs: 30_000 })).exitCode === 0;
  }
}

async function readMarker(dir: string): Promise<{ properties: Record<string, string>; createdAt: string | null } | null> {
  const text = await unlessMissing(readFile(join(dir, IMAGE_MARKER), 'utf8'), null);
  if (text === null) return null; // no marker: not an image of ours
  try {
    const m = JSON.parse(text) as { properties?: Record<string, string>; createdAt?: string };
    return { properties: m.properties ?? {}, createdAt: m.createdAt ?? null };
  } catch {
    return null; // a marker that is not JSON was not written by us (ours are written atomically)
  }
}
