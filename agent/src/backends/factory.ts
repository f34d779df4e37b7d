import { join } from 'node:path';
import { WarmstartError } from '../errors.js';
import type { BackendName, SnapshotBackend } from './backend.js';

export const BACKEND_NAMES: readonly BackendName[] = ['docker', 'incus', 'lima', 'cloud-hypervisor'];

/**
 * The backend named on the command line, configured from the environment:
 * `WARMSTART_INCUS_SOCKET`, `WARMSTART_LIMACTL` (+ `LIMA_HOME`),
 * `WARMSTART_CLOUD_HYPERVISOR` (the binary) and the state dir for
 * cloud-hypervisor's images and machines. Each is loaded only when asked for.
 */
export async function createBackend(name: string, env: NodeJS.ProcessEnv, stateDir: string): Promise<SnapshotBackend> {
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
      const { spawnCloudHypervisor } = await import('./cloud-hypervisor-host.js');
      return new CloudHypervisorBackend({
        stateDir: join(stateDir, 'cloud-hypervisor'),
        startVmm: spawnCloudHypervisor(env.WARMSTART_CLOUD_HYPERVISOR ?? 'cloud-hypervisor'),
      });
    }
    default:
      throw new WarmstartError('INVALID_ARGUMENT', `--backend takes one of ${BACKEND_NAMES.join(', ')}, got '${name}'`);
  }
}
