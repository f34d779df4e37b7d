import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudHypervisorBackend } from '../../../agent/src/backends/cloud-hypervisor.js';
import { ChLayout } from '../../../agent/src/backends/cloud-hypervisor-layout.js';
import { snapshotBackendContract } from '../../contract/snapshot-backend.contract.js';
import { prepareBaseImage } from '../../fakes/cloud-hypervisor/base-image.js';
import { FakeChHost } from '../../fakes/cloud-hypervisor/fake-host.js';

snapshotBackendContract('cloud-hypervisor (fake CH API on unix sockets)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ws-ch-'));
  const host = new FakeChHost();
  const layout = new ChLayout(join(dir, 'state'));
  await prepareBaseImage(host, { imagesDir: layout.imagesDir, workDir: dir, name: 'base' });
  const backend = new CloudHypervisorBackend({
    stateDir: layout.stateDir,
    startVmm: host.startVmm,
    guest: host.guest((m) => layout.apiSocket(m)),
    hooks: {
      // the host "creates" what a restore needs, as a privileged helper would
      ensureTap: async (name) => void host.taps.add(name),
      ensureVirtiofsd: (socket) => host.startVirtiofsd(socket),
      wipeCredentials: async () => undefined,
      injectCredentials: async () => undefined,
    },
  });
  return {
    backend,
    baseImage: 'base',
    prefix: `ct${process.pid}`,
    snapshots: true,
    cleanup: async () => {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
