import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotBackend } from '../../agent/src/backends/backend.js';
import { isWarmstartError } from '../../agent/src/errors.js';

/** What a backend's test file hands the shared suite. */
export interface ContractSubject {
  backend: SnapshotBackend;
  /** an image every machine can start from (a base image, an alias, a template) */
  baseImage: string;
  /** names for the machines and images this suite makes: unique per run, so cleanup touches only them */
  prefix: string;
  /** whether the backend has VM/instance state snapshots */
  snapshots: boolean;
  cleanup(): Promise<void>;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).not.toBeNull();
  expect(isWarmstartError(err) ? err.code : err).toBe(code);
}

/**
 * The one contract every SnapshotBackend meets, run against each (real
 * dockerd, real LXD, the Lima and cloud-hypervisor fakes). Each backend's
 * test file is a few lines that build a subject and call this.
 */
export function snapshotBackendContract(label: string, make: () => Promise<ContractSubject>): void {
  describe(`SnapshotBackend contract: ${label}`, () => {
    let s: ContractSubject;
    const m = (n: string): string => `${s.prefix}-${n}`;

    beforeAll(async () => {
      s = await make();
    });
    afterAll(async () => {
      await s?.cleanup();
    });

    it('launches a machine from the base image, lists it running, runs commands in it', async () => {
      const machine = await s.backend.launch(s.baseImage, m('a'));
      expect(machine).toMatchObject({ name: m('a'), state: 'running' });
      expect((await s.backend.listMachines()).map((x) => x.name)).toContain(m('a'));
      const r = await s.backend.exec(m('a'), ['sh', '-c', 'echo hello from $0', 'contract']);
      expect(r).toMatchObject({ exitCode: 0 });
      expect(r.stdout.trim()).toBe('hello from contract');
      expect((await s.backend.exec(m('a'), ['sh', '-c', 'exit 7'])).exitCode).toBe(7);
    });

    it('captures a provisioned machine as an image that new machines start from with the provisioned state', async () => {
      expect((await s.backend.exec(m('a'), ['sh', '-c', 'echo provisioned > /provisioned.txt'])).exitCode).toBe(0);
      const image = await s.backend.captureImage(m('a'), m('img'), { 'dev.warmstart.test': 'contract' });
      expect(image.name).toBe(m('img'));
      expect(await s.backend.imageExists(m('img'))).toBe(true);
      expect((await s.backend.listImages(s.prefix)).map((i) => i.name)).toContain(m('img'));
      await s.backend.launch(m('img'), m('b'));
      const r = await s.backend.exec(m('b'), ['cat', '/provisioned.txt']);
      expect(r.stdout.trim()).toBe('provisioned');
    });

    it('refuses what does not exist with typed errors', async () => {
      await expectCode(s.backend.launch(m('no-such-image'), m('c')), 'IMAGE_NOT_FOUND');
      await expectCode(s.backend.exec(m('no-such-machine'), ['true']), 'MACHINE_NOT_FOUND');
      expect(await s.backend.imageExists(m('no-such-image'))).toBe(false);
    });

    it('snapshots and restores machine state, or says it cannot', async () => {
      if (!s.snapshots) {
        await expectCode(s.backend.snapshot(m('a'), 'snap1'), 'BACKEND_UNSUPPORTED');
        await expectCode(s.backend.restore(m('a'), 'snap1'), 'BACKEND_UNSUPPORTED');
        return;
      }
      await s.backend.exec(m('a'), ['sh', '-c', 'echo before > /state.txt']);
      const snap = await s.backend.snapshot(m('a'), 'snap1');
      expect(snap).toMatchObject({ machine: m('a'), name: 'snap1' });
      expect((await s.backend.listSnapshots(m('a'))).map((x) => x.name)).toContain('snap1');
      await s.backend.exec(m('a'), ['sh', '-c', 'echo after > /state.txt']);
      await s.backend.restore(m('a'), 'snap1');
      expect((await s.backend.exec(m('a'), ['cat', '/state.txt'])).stdout.trim()).toBe('before');
      await s.backend.deleteSnapshot(m('a'), 'snap1');
      expect((await s.backend.listSnapshots(m('a'))).map((x) => x.name)).not.toContain('snap1');
      await expectCode(s.backend.restore(m('a'), 'snap1'), 'SNAPSHOT_NOT_FOUND');
    });

    it('removes machines and images', async () => {
      await s.backend.removeMachine(m('b'));
      expect((await s.backend.listMachines()).map((x) => x.name)).not.toContain(m('b'));
      await s.backend.removeImage(m('img'));
      expect(await s.backend.imageExists(m('img'))).toBe(false);
      await s.backend.removeMachine(m('a'));
    });
  });
}
