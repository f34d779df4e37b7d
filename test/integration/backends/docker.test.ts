/**
 * The shared SnapshotBackend contract against the real Docker engine of the
 * testbed: machines are containers of the busybox base image, captures are
 * `docker commit`s, and state snapshots are refused (BACKEND_UNSUPPORTED).
 * Everything this run makes is named with its own prefix; cleanup touches
 * nothing else.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../../../agent/src/backends/docker.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { snapshotBackendContract } from '../../contract/snapshot-backend.contract.js';
import { imageExists } from '../../support/docker.js';
import { runId } from '../../support/repos.js';
import { loadTestbed } from '../../support/testbed.js';

const backend = new DockerBackend(new DockerodeEngine());
const prefix = runId('wsdkr');

async function cleanup(): Promise<void> {
  // Only what this run made: every machine and image name starts with its prefix.
  for (const m of await backend.listMachines()) {
    if (m.name.startsWith(`${prefix}-`)) await backend.removeMachine(m.name).catch(() => undefined);
  }
  for (const i of await backend.listImages(`${prefix}-`)) await backend.removeImage(i.name).catch(() => undefined);
}

snapshotBackendContract('docker on the real engine', async () => ({
  backend,
  baseImage: loadTestbed().baseImage,
  prefix,
  snapshots: false,
  cleanup,
}));

describe('docker backend: beyond the contract', () => {
  const tb = loadTestbed();
  const m = (n: string): string => `${prefix}-x${n}`;
  afterAll(cleanup);

  it('feeds stdin to exec and keeps stdout and stderr apart', async () => {
    await backend.launch(tb.baseImage, m('io'));
    const r = await backend.exec(m('io'), ['sh', '-c', 'cat; echo to-stderr >&2; exit 3'], { input: 'line one\nline two\n' });
    expect(r).toEqual({ exitCode: 3, stdout: 'line one\nline two\n', stderr: 'to-stderr\n' });
  });

  it('says why it has no snapshots, for every snapshot operation', async () => {
    for (const op of [
      () => backend.snapshot(m('io'), 's'),
      () => backend.restore(m('io'), 's'),
      () => backend.listSnapshots(m('io')),
      () => backend.deleteSnapshot(m('io'), 's'),
    ]) {
      const err = await op().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isWarmstartError(err, 'BACKEND_UNSUPPORTED'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/Docker cannot save or restore a container's running state/);
    }
  });

  it('refuses a second machine of the same name, and exec in a stopped one, with typed errors', async () => {
    const again = await backend.launch(tb.baseImage, m('io')).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(again, 'BACKEND_PRECONDITION'), String(again)).toBe(true);
    await backend.launch(tb.baseImage, m('stop'));
    const { execa } = await import('execa');
    await execa('docker', ['stop', '-t', '1', m('stop')]);
    expect(await backend.listMachines()).toContainEqual({ name: m('stop'), state: 'stopped' });
    const err = await backend.exec(m('stop'), ['true']).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION'), String(err)).toBe(true);
    const gone = await backend.removeMachine(m('nope')).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(gone, 'MACHINE_NOT_FOUND')).toBe(true);
    const noImage = await backend.removeImage(m('nope')).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(noImage, 'IMAGE_NOT_FOUND')).toBe(true);
  });

  it("a captured image keeps the base image's defaults and labels, and is not taken for the machine", async () => {
    await backend.exec(m('io'), ['sh', '-c', 'echo kept > /kept.txt']);
    const image = await backend.captureImage(m('io'), m('img'), { 'dev.warmstart.test': 'extra' });
    expect(image.properties).toMatchObject({ 'dev.warmstart.managed': 'true', 'dev.warmstart.test': 'extra', 'warmstart.machine': '' });
    expect(await imageExists(m('img'))).toBe(true);
    const { execa } = await import('execa');
    // A plain `docker run` does what the base image does (its CMD is /bin/sh, reading a script
    // from stdin), not the machine's keep-alive loop.
    const inspect = JSON.parse(String((await execa('docker', ['image', 'inspect', m('img')])).stdout)) as {
      Config: { Entrypoint: unknown; Cmd: unknown };
    }[];
    expect(inspect[0]!.Config.Cmd).toEqual(['/bin/sh']);
    expect(inspect[0]!.Config.Entrypoint ?? []).toEqual([]);
    const run = await execa('docker', ['run', '--rm', '-i', '--label', 'warmstart.test=docker-backend', m('img')], {
      reject: false,
      input: 'cat /kept.txt\n',
    });
    expect(run.exitCode, String(run.stderr)).toBe(0);
    expect(String(run.stdout).trim()).toBe('kept');
    // Machines launched from it are found by their own name only.
    await backend.launch(m('img'), m('child'));
    const names = (await backend.listMachines()).map((x) => x.name).filter((n) => n.startsWith(prefix));
    expect(names.filter((n) => n === m('io'))).toHaveLength(1);
    expect(names).toContain(m('child'));
    await cleanup();
    expect((await backend.listMachines()).some((x) => x.name.startsWith(prefix))).toBe(false);
    expect(await backend.listImages(prefix)).toEqual([]);
  });
});
