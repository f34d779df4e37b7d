import type { BackendName, ExecResult, Machine, MachineImage, SnapshotBackend, StateSnapshot } from '../../../agent/src/backends/backend.js';
import { WarmstartError } from '../../../agent/src/errors.js';

/** One call the fake saw, in order. */
export type FakeCall =
  | { op: 'launch'; image: string; machine: string }
  | { op: 'exec'; machine: string; argv: string[]; input?: string }
  | { op: 'capture'; machine: string; image: string; properties: Record<string, string> }
  | { op: 'remove'; machine: string };

/**
 * An in-memory SnapshotBackend for machineUp's control flow only (the real
 * proof is on LXD). It refuses what the real ones refuse: a missing image or
 * machine, a taken machine name, an image name already in use.
 */
export class FakeBackend implements SnapshotBackend {
  readonly calls: FakeCall[] = [];
  readonly machines = new Map<string, Machine>();
  readonly images = new Map<string, MachineImage>();
  /** answers exec; default: exit 0, no output */
  onExec: (machine: string, argv: string[], input?: string) => ExecResult = () => ({ exitCode: 0, stdout: '', stderr: '' });
  private clock = 0;

  /** `name`: which backend it stands for (machine-snapshot.ts decides by it whether there are state snapshots) */
  constructor(
    images: string[] = [],
    readonly name: BackendName = 'incus',
  ) {
    for (const i of images) this.images.set(i, { name: i, properties: {}, createdAt: this.tick() });
  }

  private tick(): string {
    return new Date(Date.UTC(2026, 0, 1) + ++this.clock * 1000).toISOString();
  }

  private need(machine: string): Machine {
    const m = this.machines.get(machine);
    if (!m) throw new WarmstartError('MACHINE_NOT_FOUND', `no machine ${machine}`);
    return m;
  }

  async launch(image: string, machine: string): Promise<Machine> {
    if (!this.images.has(image)) throw new WarmstartError('IMAGE_NOT_FOUND', `no image ${image}`);
    if (this.machines.has(machine)) throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} exists`);
    this.calls.push({ op: 'launch', image, machine });
    const m: Machine = { name: machine, state: 'running' };
    this.machines.set(machine, m);
    return { ...m };
  }

  async exec(machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> {
    if (this.need(machine).state !== 'running') throw new WarmstartError('BACKEND_PRECONDITION', 'not running');
    this.calls.push({ op: 'exec', machine, argv, ...(options.input === undefined ? {} : { input: options.input }) });
    return this.onExec(machine, argv, options.input);
  }

  async captureImage(machine: string, image: string, properties: Record<string, string> = {}): Promise<MachineImage> {
    this.need(machine);
    if (this.images.has(image)) throw new WarmstartError('BACKEND_PRECONDITION', `image ${image} exists`);
    this.calls.push({ op: 'capture', machine, image, properties });
    const img = { name: image, properties, createdAt: this.tick() };
    this.images.set(image, img);
    return img;
  }

  async imageExists(image: string): Promise<boolean> {
    return this.images.has(image);
  }

  async listImages(prefix = ''): Promise<MachineImage[]> {
    return [...this.images.values()].filter((i) => i.name.startsWith(prefix));
  }

  async removeImage(image: string): Promise<void> {
    if (!this.images.delete(image)) throw new WarmstartError('IMAGE_NOT_FOUND', `no image ${image}`);
  }

  async listMachines(): Promise<Machine[]> {
    return [...this.machines.values()].map((m) => ({ ...m }));
  }

  async removeMachine(machine: string): Promise<void> {
    this.need(machine);
    this.calls.push({ op: 'remove', machine });
    this.machines.delete(machine);
  }

  snapshot(_machine: string, _name: string): Promise<StateSnapshot> {
    return Promise.reject(new WarmstartError('BACKEND_UNSUPPORTED', 'the fake has no snapshots'));
  }
  restore(_machine: string, _name: string): Promise<void> {
    return Promise.reject(new WarmstartError('BACKEND_UNSUPPORTED', 'the fake has no snapshots'));
  }
  listSnapshots(_machine: string): Promise<StateSnapshot[]> {
    return Promise.reject(new WarmstartError('BACKEND_UNSUPPORTED', 'the fake has no snapshots'));
  }
  deleteSnapshot(_machine: string, _name: string): Promise<void> {
    return Promise.reject(new WarmstartError('BACKEND_UNSUPPORTED', 'the fake has no snapshots'));
  }
}

/** The fake given state snapshots, refusing what the real backends refuse. */
export function withSnapshots(fake: FakeBackend): FakeBackend & { restored: string[] } {
  const snaps = new Map<string, StateSnapshot>();
  const restored: string[] = [];
  const known = (machine: string): void => {
    if (!fake.machines.has(machine)) throw new WarmstartError('MACHINE_NOT_FOUND', `no machine ${machine}`);
  };
  const b: SnapshotBackend = fake;
  b.snapshot = async (machine, name) => {
    known(machine);
    if (snaps.has(`${machine}/${name}`)) throw new WarmstartError('BACKEND_PRECONDITION', `snapshot ${name} exists`);
    const s = { machine, name, createdAt: '2026-01-01T00:00:00.000Z' };
    snaps.set(`${machine}/${name}`, s);
    return s;
  };
  b.restore = async (machine, name) => {
    known(machine);
    if (!snaps.has(`${machine}/${name}`)) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of ${machine}`);
    restored.push(`${machine}/${name}`);
  };
  b.listSnapshots = async (machine) => {
    known(machine);
    return [...snaps.values()].filter((s) => s.machine === machine);
  };
  b.deleteSnapshot = async (machine, name) => {
    known(machine);
    if (!snaps.delete(`${machine}/${name}`)) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `no snapshot ${name} of ${machine}`);
  };
  return Object.assign(fake, { restored });
}
