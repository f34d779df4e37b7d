import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { WarmstartError } from '../errors.js';
import type { ExecResult } from './backend.js';
import { CloudHypervisorApi } from './cloud-hypervisor-api.js';

/**
 * What the cloud-hypervisor backend needs from the host and the guest but
 * cannot do itself: start a VMM process, make TAP devices and virtiofsd
 * sockets exist, reach the guest, and handle credentials inside it. Each is
 * injected; the defaults here check and fail with a clear typed error.
 */

/** Starts a fresh VMM (no VM) whose API listens on `apiSocket`; resolves once it is spawned. */
export type StartVmm = (apiSocket: string, options: { logFile: string }) => Promise<void>;

/** Where the hooks are called from, for logs and per-machine host setup. */
export interface HookContext {
  machine: string;
  /** the device's index in the VM config */
  index: number;
}

/** Host-side work around a restore and guest-side work around a snapshot. */
export interface HostHooks {
  /** Makes the TAP device exist (a restore re-opens it by name); throw if it cannot. */
  ensureTap(name: string, context: HookContext): Promise<void>;
  /** Makes virtiofsd listen on `socketPath` (a restore reconnects to the recorded socket); throw if it cannot. */
  ensureVirtiofsd(socketPath: string, sharedDir: string | undefined, context: HookContext & { tag: string }): Promise<void>;
  /** Removes every credential from the running guest, before its memory and disks are captured. */
  wipeCredentials(machine: string): Promise<void>;
  /** Puts the credentials back into the running guest (after a capture, a launch or a restore). */
  injectCredentials(machine: string): Promise<void>;
}

/**
 * The channel into the guest (SSH or vsock in production). `ready` answers
 * whether the guest accepts commands now; it returns false while the guest is
 * still coming up and throws only when it never will (the caller polls it).
 */
export interface CloudHypervisorGuest {
  ready(machine: string): Promise<boolean>;
  exec(machine: string, argv: string[], input?: string): Promise<ExecResult>;
}

async function isSocket(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isSocket(),
    () => false,
  );
}

export const defaultHostHooks: HostHooks = {
  async ensureTap(name) {
    const present = await stat(`/sys/class/net/${name}`).then(
      () => true,
      () => false,
    );
    if (!present) {
      throw new WarmstartError('BACKEND_PRECONDITION', `TAP device ${name} does not exist`, {
        detail: `a restored VM re-opens its recorded TAPs; create it first, e.g. ip tuntap add dev ${name} mode tap user <vmm-user>`,
      });
    }
  },
  async ensureVirtiofsd(socketPath) {
    if (!(await isSocket(socketPath))) {
      throw new WarmstartError('BACKEND_PRECONDITION', `virtiofsd is not listening on ${socketPath}`, {
        detail: `a restored VM reconnects to its recorded virtiofs sockets; start virtiofsd --socket-path=${socketPath} --shared-dir=<dir> first`,
      });
    }
  },
  async wipeCredentials(machine) {
    // Fail closed: without a wipe hook a snapshot could carry the guest's secrets.
    throw new WarmstartError('BACKEND_PRECONDITION', `no credential wipe hook configured; refusing to capture ${machine}`, {
      detail: 'pass hooks.wipeCredentials (a no-op if the guest never holds credentials)',
    });
  },
  async injectCredentials() {
    // Nothing configured to inject: the machine simply runs without credentials.
  },
};

function noGuestChannel(): WarmstartError {
  return new WarmstartError('BACKEND_UNAVAILABLE', 'no guest channel configured for cloud-hypervisor', {
    detail: 'pass options.guest (an SSH or vsock client) to reach the guest',
  });
}

/** Used when no guest channel is configured: every call says so. */
export const unconfiguredGuest: CloudHypervisorGuest = {
  ready: () => Promise.reject(noGuestChannel()),
  exec: () => Promise.reject(noGuestChannel()),
};

/**
 * Production `startVmm`: `cloud-hypervisor --api-socket path=<socket>
 * --log-file <file>`, detached with no pipes to this process, so VMs outlive
 * an agent restart. Resolves once the VMM it spawned (matched by the pid
 * vmm.ping reports) answers. A VMM that exits before answering is tried again
 * until the time is up: the one just shut down may still hold the socket's
 * lock (`<socket>.lock`) for a moment. A binary that cannot run is
 * BACKEND_UNAVAILABLE at once.
 */
export function spawnCloudHypervisor(binary = 'cloud-hypervisor', options: { timeoutMs?: number } = {}): StartVmm {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return async (apiSocket, { logFile }) => {
    const deadline = Date.now() + timeoutMs;
    const api = new CloudHypervisorApi(apiSocket, { timeoutMs: 1000 });
    for (;;) {
      const child = execa(binary, ['--api-socket', `path=${apiSocket}`, '--log-file', logFile], {
        detached: true,
        cleanup: false,
        reject: false,
        stdio: 'ignore',
      });
      child.unref();
      const stop = new AbortController();
      const exited = child.then((r) => ({ exited: r }));
      const up = answersAs(api, child.pid, deadline, stop.signal).then((ok) => ({ ok }));
      const outcome = await Promise.race([exited, up]);
      stop.abort();
      if ('ok' in outcome) {
        if (outcome.ok) return;
        child.kill(); // ours, and useless: it never answered
        throw new WarmstartError('BACKEND_UNAVAILABLE', `${binary} did not answer on ${apiSocket}`, { detail: `see ${logFile}` });
      }
      const r = outcome.exited;
      const gone = r.shortMessage ?? `exited with ${String(r.exitCode)}`;
      if ((r as { code?: string }).code === 'ENOENT' || Date.now() >= deadline) {
        throw new WarmstartError('BACKEND_UNAVAILABLE', `cannot start ${binary}`, { detail: `${gone}; see ${logFile}` });
      }
      await sleep(100);
    }
  };
}

/** Polls vmm.ping until the VMM answering is the process `pid` (not one still shutting down). */
async function answersAs(api: CloudHypervisorApi, pid: number | undefined, deadline: number, signal: AbortSignal): Promise<boolean> {
  for (let wait = 10; Date.now() < deadline && !signal.aborted; wait = Math.min(wait * 2, 250)) {
    const ping = await api.ping().catch(() => null); // not answering yet: polled again
    if (ping && (ping.pid === undefined || ping.pid === pid)) return true;
    await sleep(wait);
  }
  return false;
}
