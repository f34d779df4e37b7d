import { lstat, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IMAGE_MARKER, LimaBackend } from '../../../agent/src/backends/lima.js';
import { readQcow2Backing } from '../../../agent/src/backends/lima-qcow2.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { type FakeLima, fakeLima, FAKE_LIMACTL } from '../../fakes/lima/harness.js';

vi.setConfig({ testTimeout: 30_000 });

let lima: FakeLima | undefined;
afterEach(async () => {
  await lima?.cleanup();
  lima = undefined;
});

async function setup(version: string, o: { copyMode?: 'auto' | 'copy'; vmType?: 'qemu' | 'vz' } = {}) {
  lima = await fakeLima({ version });
  await lima.makeBase('base', { vmType: o.vmType ?? 'qemu' });
  const backend = new LimaBackend({ limactl: FAKE_LIMACTL, limaHome: lima.home, env: lima.env, copyMode: o.copyMode ?? 'auto' });
  return { lima, backend };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  return isWarmstartError(e) ? e.code : `not a typed error: ${String(e)}`;
}

/** base -> machine a, provisioned -> image img -> machine b */
async function provisionCaptureLaunch(backend: LimaBackend) {
  await backend.launch('base', 'a');
  expect((await backend.exec('a', ['sh', '-c', 'echo provisioned > /etc/provisioned'])).exitCode).toBe(0);
  await backend.captureImage('a', 'img', { 'dev.warmstart.key': 'k1' });
  await backend.launch('img', 'b');
  return (await backend.exec('b', ['cat', '/etc/provisioned'])).stdout;
}

describe('LimaBackend: clone where the tool has it, a reflink copy where not', () => {
  it('clones with Lima >= 2.0 and the machine has the provisioned file', async () => {
    const { lima, backend } = await setup('2.3.0');
    expect(await provisionCaptureLaunch(backend)).toBe('provisioned\n');
    const calls = await lima.calls();
    expect(calls).toContainEqual(['clone', '--tty=false', 'img', 'b']);
    expect(calls).toContainEqual(['start', '--tty=false', 'b']);
    expect(calls).toContainEqual(['shell', '--workdir', '/', 'b', '--', 'cat', '/etc/provisioned']);
  });

  it('copies the instance dir with Lima 1.x (no clone) and the machine has the provisioned file', async () => {
    const { lima, backend } = await setup('1.2.1');
    expect(await provisionCaptureLaunch(backend)).toBe('provisioned\n');
    const calls = await lima.calls();
    expect(calls.filter((c) => c.includes('clone'))).toEqual([]);
    expect(calls).toContainEqual(['--version']);
  });

  it('keeps Lima 2.1 "disk" -> "image" a symlink in a copy, so the copy has one disk', async () => {
    const { lima, backend } = await setup('2.3.0', { copyMode: 'copy' });
    expect(await provisionCaptureLaunch(backend)).toBe('provisioned\n');
    expect(await readlink(join(lima.home, 'b', 'disk'))).toBe('image');
    expect((await lima.calls()).filter((c) => c[0] === 'clone')).toEqual([]);
  });

  it('launches without the image marker, so machines are not listed as images', async () => {
    const { backend } = await setup('2.3.0');
    await provisionCaptureLaunch(backend);
    expect(await backend.listImages()).toEqual([{ name: 'img', properties: { 'dev.warmstart.key': 'k1' }, createdAt: expect.any(String) }]);
    expect((await backend.listMachines()).map((m) => [m.name, m.state]).sort()).toEqual([
      ['a', 'running'],
      ['b', 'running'],
      ['base', 'stopped'],
    ]);
  });
});

describe('LimaBackend: a machine from an old-layout image stands on its own disks', () => {
  // Before Lima 2.1 a qemu diffdisk is a qcow2 overlay on the ABSOLUTE path of
  // its instance's basedisk; `limactl clone` (2.0) and a byte copy keep that
  // path. The backend repoints the copy at its own (reflinked) basedisk, so an
  // image can be deleted while its machines live on.
  for (const [version, how] of [
    ['1.2.1', 'copy'],
    ['2.0.3', 'clone'],
  ] as const) {
    it(`keeps working after the image and its source are deleted (Lima ${version}, ${how})`, async () => {
      const { lima, backend } = await setup(version);
      await provisionCaptureLaunch(backend);
      const diffdisk = join(lima.home, 'b', 'diffdisk');
      expect((await readQcow2Backing(diffdisk))?.name).toBe('basedisk');
      expect((await readQcow2Backing(join(lima.home, 'img', 'diffdisk')))?.name).toBe('basedisk');

      await backend.removeImage('img');
      await backend.removeMachine('a');
      expect((await lima.run(['stop', 'b'])).exitCode).toBe(0);
      const start = await lima.run(['start', '--tty=false', 'b']);
      expect(start.stderr).not.toMatch(/Could not open backing file/);
      expect(start.exitCode).toBe(0);
      expect((await backend.exec('b', ['cat', '/etc/provisioned'])).stdout).toBe('provisioned\n');
      expect((await backend.exec('b', ['cat', '/etc/os-release'])).stdout).toBe('ID=fake\n');
    });
  }
});

describe('LimaBackend: snapshots', () => {
  it('says BACKEND_UNSUPPORTED for a vz instance', async () => {
    const { backend } = await setup('2.3.0', { vmType: 'vz' });
    await backend.launch('base', 'v');
    expect(await codeOf(backend.snapshot('v', 's1'))).toBe('BACKEND_UNSUPPORTED');
    expect(await codeOf(backend.restore('v', 's1'))).toBe('BACKEND_UNSUPPORTED');
    expect(await codeOf(backend.listSnapshots('v'))).toBe('BACKEND_UNSUPPORTED');
    expect(await codeOf(backend.deleteSnapshot('v', 's1'))).toBe('BACKEND_UNSUPPORTED');
  });

  it('says SNAPSHOT_NOT_FOUND for a missing tag, though Lima exits 0 for it on a running VM', async () => {
    const { lima, backend } = await setup('2.3.0');
    await backend.launch('base', 'a');
    const raw = await lima.run(['snapshot', 'apply', 'a', '--tag', 'nope']);
    expect(raw.exitCode).toBe(0);
    expect(await codeOf(backend.restore('a', 'nope'))).toBe('SNAPSHOT_NOT_FOUND');
    expect(await codeOf(backend.deleteSnapshot('a', 'nope'))).toBe('SNAPSHOT_NOT_FOUND');
  });

  it('snapshots and restores a stopped VM too (qemu-img), and refuses a duplicate or ambiguous name', async () => {
    const { lima, backend } = await setup('2.3.0');
    await backend.launch('base', 'a');
    await backend.exec('a', ['sh', '-c', 'echo one > /v']);
    await lima.run(['stop', 'a']);
    expect(await backend.snapshot('a', 's1')).toMatchObject({ machine: 'a', name: 's1', createdAt: expect.any(String) });
    expect(await codeOf(backend.snapshot('a', 's1'))).toBe('BACKEND_PRECONDITION');
    expect(await codeOf(backend.snapshot('a', '1'))).toBe('INVALID_ARGUMENT');
    await lima.run(['start', '--tty=false', 'a']);
    await backend.exec('a', ['sh', '-c', 'echo two > /v']);
    await lima.run(['stop', 'a']);
    await backend.restore('a', 's1');
    await lima.run(['start', '--tty=false', 'a']);
    expect((await backend.exec('a', ['cat', '/v'])).stdout).toBe('one\n');
  });
});

describe('LimaBackend: typed errors', () => {
  it('maps what does not exist, what is running and what is not ours', async () => {
    const { lima, backend } = await setup('2.3.0');
    await backend.launch('base', 'a');
    expect(await codeOf(backend.launch('a', 'x'))).toBe('BACKEND_PRECONDITION'); // running source
    expect(await codeOf(backend.launch('base', 'a'))).toBe('BACKEND_PRECONDITION'); // name taken
    expect(await codeOf(backend.launch('nope', 'x'))).toBe('IMAGE_NOT_FOUND');
    expect(await codeOf(backend.launch('base', 'bad/name'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(backend.captureImage('nope', 'img'))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.captureImage('a', 'base'))).toBe('BACKEND_PRECONDITION');
    expect(await codeOf(backend.removeImage('base'))).toBe('BACKEND_PRECONDITION'); // not captured by us
    expect(await codeOf(backend.removeImage('nope'))).toBe('IMAGE_NOT_FOUND');
    expect(await codeOf(backend.removeMachine('nope'))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.exec('nope', ['true']))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.snapshot('nope', 's'))).toBe('MACHINE_NOT_FOUND');
    await lima.run(['stop', 'a']);
    expect(await codeOf(backend.exec('a', ['true']))).toBe('BACKEND_PRECONDITION');
  });

  it('says BACKEND_UNAVAILABLE when there is no limactl', async () => {
    const backend = new LimaBackend({ limactl: '/nonexistent/limactl' });
    expect(await codeOf(backend.listMachines())).toBe('BACKEND_UNAVAILABLE');
  });

  it('captures a running machine and starts it again; a stopped one stays stopped', async () => {
    const { lima, backend } = await setup('2.3.0');
    await backend.launch('base', 'a');
    await backend.captureImage('a', 'img1');
    expect((await backend.listMachines()).find((m) => m.name === 'a')?.state).toBe('running');
    expect(await lstat(join(lima.home, 'img1', IMAGE_MARKER)).then(() => true)).toBe(true);
    await lima.run(['stop', 'a']);
    await backend.captureImage('a', 'img2');
    expect((await backend.listMachines()).find((m) => m.name === 'a')?.state).toBe('stopped');
    expect((await backend.listImages('img')).map((i) => i.name).sort()).toEqual(['img1', 'img2']);
  });

  it('feeds input to the command and returns its output and status as they are', async () => {
    const { backend } = await setup('2.3.0');
    await backend.launch('base', 'a');
    expect(await backend.exec('a', ['sh', '-c', 'cat > /etc/gitconfig'], { input: '[user]\n\tname = w\n' })).toMatchObject({ exitCode: 0 });
    expect((await backend.exec('a', ['cat', '/etc/gitconfig'])).stdout).toBe('[user]\n\tname = w\n');
    expect(await backend.exec('a', ['cat', '/missing'])).toEqual({ exitCode: 1, stdout: '', stderr: 'cat: /missing: No such file or directory\n' });
  });

  it('removes a machine whose start failed, so the name can be used again', async () => {
    const { lima, backend } = await setup('1.2.1');
    await backend.launch('base', 'a');
    await backend.captureImage('a', 'img');
    await rm(join(lima.home, 'img', 'basedisk')); // the image broken by hand
    const err = await backend.launch('img', 'b').then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(err, 'BACKEND_ERROR')).toBe(true);
    expect((await backend.listMachines()).map((m) => m.name)).not.toContain('b');
  });
});
