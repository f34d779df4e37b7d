import { WarmstartError } from '../errors.js';
import type { StateSnapshot } from './backend.js';
import {
  failureMessage,
  type LimaInstance,
  type Limactl,
  type LimactlResult,
  logMessages,
  parseSnapshotTable,
  type SnapshotRow,
} from './lima-cli.js';

/**
 * VM state snapshots through `limactl snapshot` (qemu only: the vz, wsl2 and
 * krunkit drivers answer "unimplemented"). Lima's own answers are not enough
 * to tell success from failure, so every change is checked against the list:
 * on a running instance Lima sends HMP savevm/loadvm/delvm, and QEMU's
 * refusals come back as output that Lima logs as a warning ("output: Error:
 * …") while exiting 0; on a stopped one qemu-img's refusal reaches us only as
 * "exit status 1".
 */
export class LimaSnapshots {
  constructor(
    private readonly cli: Limactl,
    private readonly find: (machine: string) => Promise<LimaInstance>,
  ) {}

  async create(machine: string, name: string): Promise<StateSnapshot> {
    checkTag(name);
    await this.qemu(machine);
    if ((await this.rows(machine)).some((r) => r.tag === name)) {
      throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} already has a snapshot ${name}`);
    }
    await this.change(['snapshot', 'create', machine, '--tag', name], 'snapshot create');
    const row = (await this.rows(machine)).find((r) => r.tag === name);
    if (!row) throw new WarmstartError('BACKEND_ERROR', `limactl snapshot create reported success, but ${machine} has no snapshot ${name}`);
    return { machine, name, createdAt: row.createdAt };
  }

  async apply(machine: string, name: string): Promise<void> {
    await this.existing(machine, name);
    await this.change(['snapshot', 'apply', machine, '--tag', name], 'snapshot apply');
  }

  async delete(machine: string, name: string): Promise<void> {
    await this.existing(machine, name);
    await this.change(['snapshot', 'delete', machine, '--tag', name], 'snapshot delete');
    if ((await this.rows(machine)).some((r) => r.tag === name)) {
      throw new WarmstartError('BACKEND_ERROR', `limactl snapshot delete reported success, but ${machine} still has ${name}`);
    }
  }

  async list(machine: string): Promise<StateSnapshot[]> {
    await this.qemu(machine);
    return (await this.rows(machine)).map((r) => ({ machine, name: r.tag, createdAt: r.createdAt }));
  }

  private async existing(machine: string, name: string): Promise<void> {
    checkTag(name);
    await this.qemu(machine);
    if (!(await this.rows(machine)).some((r) => r.tag === name)) {
      throw new WarmstartError('SNAPSHOT_NOT_FOUND', `machine ${machine} has no snapshot ${name}`);
    }
  }

  /** The instance's driver decides before limactl is asked (an instance without vmType predates vz: qemu). */
  private async qemu(machine: string): Promise<void> {
    const inst = await this.find(machine);
    const vmType = inst.vmType ?? 'qemu';
    if (vmType !== 'qemu') {
      throw new WarmstartError('BACKEND_UNSUPPORTED', `Lima has VM snapshots for qemu instances only; ${machine} is ${vmType}`);
    }
  }

  private async rows(machine: string): Promise<SnapshotRow[]> {
    const r = await this.cli.run(['snapshot', 'list', machine]);
    checkSnapshotResult(r, 'snapshot list');
    return parseSnapshotTable(r.stdout);
  }

  private async change(args: string[], what: string): Promise<void> {
    checkSnapshotResult(await this.cli.run(args), what);
  }
}

/** Turns what `limactl snapshot` said into a typed error, or nothing when it worked. */
export function checkSnapshotResult(r: LimactlResult, what: string): void {
  if (r.exitCode !== 0) {
    const detail = failureMessage(r);
    if (detail === 'unimplemented') {
      throw new WarmstartError('BACKEND_UNSUPPORTED', `limactl ${what}: the instance's VM driver has no snapshots`, { detail });
    }
    throw new WarmstartError('BACKEND_ERROR', `limactl ${what} failed`, { detail });
  }
  const qemuError = logMessages(r.stderr, 'warning').find((m) => m.startsWith('output: Error'));
  if (qemuError !== undefined) throw new WarmstartError('BACKEND_ERROR', `limactl ${what}: QEMU refused`, { detail: qemuError });
}

/**
 * Snapshot names: a letter or digit, then letters, digits, '.', '_', '-'
 * (up to 63). Not all digits: QEMU looks a snapshot up by ID or by name, and
 * "1" would be the first snapshot's ID.
 */
export function checkTag(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name) || /^\d+$/.test(name)) {
    throw new WarmstartError('INVALID_ARGUMENT', `invalid snapshot name ${JSON.stringify(name)}`);
  }
}
