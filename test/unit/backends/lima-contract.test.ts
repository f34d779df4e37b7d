import { vi } from 'vitest';
import { LimaBackend } from '../../../agent/src/backends/lima.js';
import { fakeLima, FAKE_LIMACTL } from '../../fakes/lima/harness.js';
import { snapshotBackendContract } from '../../contract/snapshot-backend.contract.js';

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

// The shared contract against the fake limactl: the current release (clone,
// one `disk`), Lima 2.0 (clone, qcow2 diffdisk over basedisk) and Lima 1.x
// (no clone: the reflink copy of the instance dir).
for (const version of ['2.3.0', '2.0.3', '1.2.1']) {
  snapshotBackendContract(`lima (fake limactl ${version}, qemu)`, async () => {
    const lima = await fakeLima({ version });
    await lima.makeBase('base', { files: { '/etc/os-release': 'ID=fake\n' } });
    return {
      backend: new LimaBackend({ limactl: FAKE_LIMACTL, limaHome: lima.home, env: lima.env }),
      baseImage: 'base',
      prefix: `ct${process.pid}`,
      snapshots: true,
      cleanup: () => lima.cleanup(),
    };
  });
}
