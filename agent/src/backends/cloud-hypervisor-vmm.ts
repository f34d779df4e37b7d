import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarmstartError, isWarmstartError } from '../errors.js';
import type { MachineState } from './backend.js';
import { CloudHypervisorApi, type ChVmState } from './cloud-hypervisor-api.js';
import type { CloudHypervisorGuest, StartVmm } from './cloud-hypervisor-host.js';
import { checkSocketPath, type ChLayout } from './cloud-hypervisor-layout.js';

export interface VmmControlOptions {
  layout: ChLayout;
  startVmm: StartVmm;
  guest: CloudHypervisorGuest;
  /** bounded wait for a fresh VMM to answer and for a stopped one to go */
  vmmTimeoutMs: number;
  /** bounded wait for the guest's readiness probe */
  readyTimeoutMs: number;
  apiTimeoutMs?: number;
  now: () => number;
}

function machineState(state: ChVmState): MachineState {
  if (state === 'Running') return 'running';
  if (state === 'Paused') return 'paused';
  return 'stopped';
}

/** The life of a machine's VMM process, one per machine on `machines/<m>/api.sock`, and the wait for its guest. */
export class VmmControl {
  constructor(private readonly o: VmmControlOptions) {}

  api(machine: string): CloudHypervisorApi {
    return new CloudHypervisorApi(this.o.layout.apiSocket(machine), { timeoutMs: this.o.apiTimeoutMs });
  }

  /** A fresh VMM with no VM, answering on the machine's API socket; refuses to start over a live one. */
  async start(machine: string): Promise<void> {
    const socket = this.o.layout.apiSocket(machine);
    checkSocketPath(socket);
    const api = this.api(machine);
    if (await this.answers(api)) {
      throw new WarmstartError('BACKEND_PRECONDITION', `a VMM already answers for machine ${machine}`, { detail: socket });
    }
    await rm(socket, { force: true }); // left by a VMM that died; older VMMs cannot bind over it
    await this.o.startVmm(socket, { logFile: join(this.o.layout.machine(machine), 'vmm.log') });
    if (!(await this.poll(() => this.answers(api), this.o.vmmTimeoutMs))) {
      throw new WarmstartError('BACKEND_UNAVAILABLE', `the VMM for machine ${machine} did not answer on ${socket}`);
    }
  }

  /** vmm.shutdown (the VM goes with it), then wait until nothing answers: a fresh VMM cannot take the socket before. */
  async stop(machine: string): Promise<void> {
    const api = this.api(machine);
    try {
      await api.shutdownVmm();
    } catch (err) {
      if (isWarmstartError(err, 'BACKEND_UNAVAILABLE')) return; // already gone
      throw err;
    }
    if (!(await this.poll(async () => !(await this.answers(api)), this.o.vmmTimeoutMs))) {
      throw new WarmstartError('BACKEND_ERROR', `the VMM for machine ${machine} did not stop`);
    }
  }

  async waitReady(machine: string): Promise<void> {
    if (!(await this.poll(() => this.o.guest.ready(machine), this.o.readyTimeoutMs))) {
      throw new WarmstartError('BACKEND_ERROR', `the guest of machine ${machine} was not ready within ${this.o.readyTimeoutMs} ms`);
    }
  }

  /** From vm.info: no VMM or no VM is stopped. */
  async state(machine: string): Promise<MachineState> {
    try {
      return machineState((await this.api(machine).info()).state);
    } catch (err) {
      if (isWarmstartError(err, 'BACKEND_UNAVAILABLE') || isWarmstartError(err, 'MACHINE_NOT_FOUND')) return 'stopped';
      return 'unknown';
    }
  }

  /** Polls with backoff (10 ms doubling to 250 ms) until `check` is true or the time is up. */
  private async poll(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
    const deadline = this.o.now() + timeoutMs;
    for (let wait = 10; ; wait = Math.min(wait * 2, 250)) {
      if (await check()) return true;
      if (this.o.now() >= deadline) return false;
      await sleep(wait);
    }
  }

  private answers(api: CloudHypervisorApi): Promise<boolean> {
    return api.ping().then(
      () => true,
      () => false,
    );
  }
}
