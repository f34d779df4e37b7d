import { join } from 'node:path';
import { WarmstartError } from '../errors.js';
import type { BackendName, SnapshotBackend } from './backend.js';
import type { CloudHypervisorBackendOptions, RestoreTiming } from './cloud-hypervisor.js';

/** What a caller of createBackend may add to the environment's configuration. */
export interface BackendExtras {
  /** cloud-hypervisor: called with the timing of every launch, boot and restore */
  onTiming?: (timing: RestoreTiming) => void;
}

export const BACKEND_NAMES: readonly BackendName[] = ['docker', 'incus', 'lima', 'cloud-hypervisor'];

/**
 * The backend named on the command line, configured from the environment:
 * `WARMSTART_INCUS_SOCKET`, `WARMSTART_LIMACTL` (+ `LIMA_HOME`),
 * `WARMSTART_CLOUD_HYPERVISOR` (the binary) and the state dir for
 * cloud-hypervisor's images and machines. Each is loaded only when asked for.
 * cloud-hypervisor also reads its guest channel and hooks (chBackendOptions).
 */
export async function createBackend(name: string, env: NodeJS.ProcessEnv, stateDir: string, extras: BackendExtras = {}): Promise<SnapshotBackend> {
  switch (name) {
    case 'docker':
      return new (await import('./docker.js')).DockerBackend();
    case 'incus': {
      const { IncusBackend } = await import('./incus.js');
      return new IncusBackend({ env, ...(env.WARMSTART_INCUS_SOCKET ? { socketPath: env.WARMSTART_INCUS_SOCKET } : {}) });
    }
    case 'lima': {
      const { LimaBackend } = await import('./lima.js');
      return new LimaBackend({
        ...(env.WARMSTART_LIMACTL ? { limactl: env.WARMSTART_LIMACTL } : {}),
        ...(env.LIMA_HOME ? { limaHome: env.LIMA_HOME } : {}),
      });
    }
    case 'cloud-hypervisor': {
      const { CloudHypervisorBackend } = await import('./cloud-hypervisor.js');
      return new CloudHypervisorBackend({ ...(await chBackendOptions(env, stateDir)), ...(extras.onTiming ? { onTiming: extras.onTiming } : {}) });
    }
    default:
      throw new WarmstartError('INVALID_ARGUMENT', `--backend takes one of ${BACKEND_NAMES.join(', ')}, got '${name}'`);
  }
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min)
    throw new WarmstartError('INVALID_ARGUMENT', `${name} takes a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * The cloud-hypervisor backend's options from the environment
 * (deploy/cloud-hypervisor/README.md lists them): the VMM binary, the SSH
 * guest channel with its credential wipe and injection, the operator's host
 * hook command, the virtiofs shared dir and the readiness timeout. Without
 * any of them the backend keeps its fail-closed defaults
 * (cloud-hypervisor-host.ts).
 */
export async function chBackendOptions(env: NodeJS.ProcessEnv, stateDir: string): Promise<CloudHypervisorBackendOptions> {
  const { spawnCloudHypervisor } = await import('./cloud-hypervisor-host.js');
  const { ChSshGuest, chSshFromEnv, sshCredentialHooks } = await import('./cloud-hypervisor-ssh.js');
  const settings = await chSshFromEnv(env);
  const readyTimeoutMs = wholeNumber(env, 'WARMSTART_CH_READY_TIMEOUT_MS', 100);
  const guest = settings.ssh ? new ChSshGuest(settings.ssh) : undefined;
  let hooks: CloudHypervisorBackendOptions['hooks'] = guest ? sshCredentialHooks(guest, settings) : {};
  if (env.WARMSTART_CH_HOOK) {
    const { commandHooks } = await import('./cloud-hypervisor-hook.js');
    hooks = { ...hooks, ...commandHooks(env.WARMSTART_CH_HOOK) };
  }
  const shared = env.WARMSTART_CH_VIRTIOFS_DIR;
  if (shared !== undefined && shared !== '' && !shared.startsWith('/')) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `WARMSTART_CH_VIRTIOFS_DIR takes an absolute path (with {machine} and {tag}), got ${JSON.stringify(shared)}`,
    );
  }
  return {
    stateDir: join(stateDir, 'cloud-hypervisor'),
    startVmm: spawnCloudHypervisor(env.WARMSTART_CLOUD_HYPERVISOR ?? 'cloud-hypervisor'),
    ...(guest ? { guest } : {}),
    hooks,
    ...(shared ? { virtiofsSharedDir: (machine: string, tag: string) => shared.replaceAll('{machine}', machine).replaceAll('{tag}', tag) } : {}),
    ...(readyTimeoutMs === undefined ? {} : { readyTimeoutMs }),
  };
}
