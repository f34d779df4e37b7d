import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { ChVmConfig } from '../../../agent/src/backends/cloud-hypervisor-api.js';
import type { CloudHypervisorGuest, StartVmm } from '../../../agent/src/backends/cloud-hypervisor-host.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { FakeVmm, type VmmHost } from './fake-ch.js';

/** One line of the host's log: a VMM spawned, an API call answered, or a note a test hook wrote. */
export interface FakeChEvent {
  seq: number;
  socket: string | null;
  /** 'spawn', 'PUT vm.pause', 'note:wipe', ... */
  what: string;
  status?: number;
}

/**
 * The fake machine the VMMs run on: a process table of fake VMMs (one per
 * API socket, as `cloud-hypervisor --api-socket` gives), the TAP devices
 * that exist (the test controls the set), fake virtiofsd daemons (real unix
 * listeners that exit when their VM lets go, as virtiofsd does), a guest
 * channel into the VMs, and one ordered log of everything.
 */
export class FakeChHost implements VmmHost {
  readonly taps = new Set<string>();
  readonly events: FakeChEvent[] = [];
  /** how long a resumed guest takes to answer its readiness probe */
  readyDelayMs = 0;
  private readonly vmms = new Map<string, FakeVmm>();
  private readonly virtiofsds = new Map<string, Server>();
  private readonly stopping = new Map<string, Promise<void>>();

  /** The `startVmm` a backend gets: a fresh, empty VMM on `apiSocket`. */
  readonly startVmm: StartVmm = async (apiSocket) => {
    // A live VMM keeps its API socket (upstream locks `<socket>.lock`; older ones fail to bind).
    // One that is exiting frees it in a moment: production spawn retries, the fake waits.
    await this.vmms.get(apiSocket)?.closing;
    if (this.vmms.has(apiSocket)) throw new Error(`API socket ${apiSocket} in use by a running VMM`);
    const vmm = new FakeVmm(apiSocket, this);
    await vmm.listen();
    this.vmms.set(apiSocket, vmm);
    this.record(apiSocket, 'spawn');
  };

  vmm(apiSocket: string): FakeVmm | undefined {
    return this.vmms.get(apiSocket);
  }

  others(self: FakeVmm): FakeVmm[] {
    return [...this.vmms.values()].filter((v) => v !== self);
  }

  record(socket: string | null, what: string, status?: number): void {
    this.events.push({ seq: this.events.length, socket, what, ...(status === undefined ? {} : { status }) });
  }

  /** For test hooks: puts `note:<what>` into the same ordered log as the API calls. */
  note(what: string, socket: string | null = null): void {
    this.record(socket, `note:${what}`);
  }

  /** What happened, in order (optionally on one socket and its notes): ['spawn', 'PUT vm.restore', 'note:inject', ...]. */
  timeline(socket?: string): string[] {
    return this.events.filter((e) => socket === undefined || e.socket === socket || e.socket === null).map((e) => e.what);
  }

  gone(self: FakeVmm): void {
    if (this.vmms.get(self.socketPath) === self) this.vmms.delete(self.socketPath);
  }

  released(config: ChVmConfig): void {
    for (const f of config.fs ?? []) void this.stopVirtiofsd(f.socket);
  }

  /** A fake virtiofsd: listens on `socketPath` until its VM goes. */
  async startVirtiofsd(socketPath: string): Promise<void> {
    await this.stopping.get(socketPath); // one still closing would unlink the new socket
    if (this.virtiofsds.has(socketPath)) return;
    await rm(socketPath, { force: true });
    const server = createServer((c) => c.on('error', () => undefined));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    this.virtiofsds.set(socketPath, server);
  }

  async stopVirtiofsd(socketPath: string): Promise<void> {
    const server = this.virtiofsds.get(socketPath);
    if (!server) return this.stopping.get(socketPath);
    this.virtiofsds.delete(socketPath);
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    this.stopping.set(socketPath, stopped);
    await stopped;
    if (this.stopping.get(socketPath) === stopped) this.stopping.delete(socketPath);
  }

  /** The guest channel: `socketFor` names the API socket of a machine's VMM. */
  guest(socketFor: (machine: string) => string): CloudHypervisorGuest {
    return {
      ready: async (machine) => this.vmms.get(socketFor(machine))?.guestReady() ?? false,
      exec: async (machine, argv, input) => {
        const vmm = this.vmms.get(socketFor(machine));
        if (!vmm) throw new WarmstartError('BACKEND_UNAVAILABLE', `guest of ${machine} unreachable: no VMM`);
        return vmm.guestExec(argv, input);
      },
    };
  }

  async close(): Promise<void> {
    for (const vmm of [...this.vmms.values()]) await vmm.close();
    for (const path of [...this.virtiofsds.keys()]) await this.stopVirtiofsd(path);
  }
}
