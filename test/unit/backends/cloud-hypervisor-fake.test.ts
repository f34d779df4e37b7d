import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chRequest, vmConfig, type RawAnswer } from '../../fakes/cloud-hypervisor/base-image.js';
import { FakeChHost } from '../../fakes/cloud-hypervisor/fake-host.js';

// The fake refuses what the real VMM refuses, spoken to directly (no client, no backend).

let dir: string;
let host: FakeChHost;
let socket: string;
const put = (endpoint: string, body?: unknown, on = socket): Promise<RawAnswer> => chRequest(on, 'PUT', endpoint, body);

/** A refusal as upstream renders it: the status and a JSON array of messages, "Error from API" first. */
function expectRefusal(a: RawAnswer, status: number, innermost: string | RegExp): void {
  expect(a.status).toBe(status);
  expect(Array.isArray(a.json)).toBe(true);
  const messages = a.json as string[];
  expect(messages[0]).toBe('Error from API');
  expect(messages[messages.length - 1]).toMatch(innermost);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-chfake-'));
  host = new FakeChHost();
  host.taps.add('tap0');
  await writeFile(join(dir, 'rootfs.raw'), '{}');
  await host.startVirtiofsd(join(dir, 'virtiofs.sock'));
  socket = join(dir, 'api.sock');
  await host.startVmm(socket, { logFile: join(dir, 'vmm.log') });
});

afterEach(async () => {
  await host.close();
  await rm(dir, { recursive: true, force: true });
});

/** vmm.shutdown answers first, then the process goes. */
async function gone(on: string): Promise<void> {
  for (let i = 0; i < 100 && host.vmm(on); i++) await new Promise((r) => setTimeout(r, 5));
}

async function runningVm(): Promise<void> {
  expect((await put('vm.create', vmConfig(dir, 'tap0'))).status).toBe(204);
  expect((await put('vm.boot')).status).toBe(204);
}

describe('fake cloud-hypervisor: HTTP surface', () => {
  it('answers like the upstream router: 404 JSON arrays, 400 for a wrong method or a stray body, never 405', async () => {
    expectRefusal(await chRequest(socket, 'GET', 'vm.info'), 404, 'VM is not created');
    expect(await chRequest(socket, 'GET', 'vm.nosuch')).toMatchObject({ status: 404, json: ['Not Found'] });
    expect(await chRequest(socket, 'GET', 'vm.pause')).toMatchObject({ status: 400, json: ['Bad Request'] });
    expect(await chRequest(socket, 'POST', 'vm.pause')).toMatchObject({ status: 400, text: '' });
    expect(await chRequest(socket, 'PUT', 'vm.info')).toMatchObject({ status: 400, json: ['Bad Request'] });
    expect(await put('vm.pause', {})).toMatchObject({ status: 400, json: ['Bad Request'] });
    const bad = await put('vm.create', '{not json');
    expect(bad.status).toBe(400);
    expect((bad.json as string[])[0]).toBe('Failed to deserialize JSON');
    expect((await put('vm.create', { disks: [] })).status).toBe(400); // payload is required
    const ping = await chRequest(socket, 'GET', 'vmm.ping');
    expect(ping.status).toBe(200);
    expect(ping.json).toMatchObject({ version: expect.any(String) });
  });
});

describe('fake cloud-hypervisor: VM state machine', () => {
  it('holds one VM, boots only a created one, pauses only a running one, resumes only a paused one', async () => {
    expectRefusal(await put('vm.boot'), 404, 'VM config is missing');
    expect((await put('vm.create', vmConfig(dir, 'tap0'))).status).toBe(204);
    expectRefusal(await put('vm.create', vmConfig(dir, 'tap0')), 500, 'VM is already created');
    expect((await chRequest(socket, 'GET', 'vm.info')).json).toMatchObject({ state: 'Created' });
    expectRefusal(await put('vm.pause'), 500, 'VM is not running');
    expectRefusal(await put('vm.resume'), 500, 'VM is not running');
    expectRefusal(await put('vm.snapshot', { destination_url: `file://${dir}` }), 500, 'VM is not running');
    expect((await put('vm.boot')).status).toBe(204);
    expectRefusal(await put('vm.boot'), 500, 'invalid VM state transition: Running to Running');
    expectRefusal(await put('vm.resume'), 500, /InvalidStateTransition\(Running, Running\)/);
    expect((await put('vm.pause')).status).toBe(204);
    expectRefusal(await put('vm.pause'), 500, /InvalidStateTransition\(Paused, Paused\)/);
    expect((await put('vm.resume')).status).toBe(204);
    const info = await chRequest(socket, 'GET', 'vm.info');
    expect(info.json).toMatchObject({ state: 'Running', config: { disks: [{ path: join(dir, 'rootfs.raw') }] } });
    expect((await put('vm.shutdown')).status).toBe(204);
    expect((await chRequest(socket, 'GET', 'vm.info')).json).toMatchObject({ state: 'Created' });
    expectRefusal(await put('vm.shutdown'), 500, 'VM is not running');
  });

  it('boots only with its devices: disk present, virtiofsd listening, TAP existing and free', async () => {
    host.taps.delete('tap0');
    await put('vm.create', vmConfig(dir, 'tap0'));
    expectRefusal(await put('vm.boot'), 500, 'Operation not permitted (os error 1)');
    host.taps.add('tap0');
    await host.stopVirtiofsd(join(dir, 'virtiofs.sock'));
    expectRefusal(await put('vm.boot'), 500, /No such file or directory|Connection refused/);
    await host.startVirtiofsd(join(dir, 'virtiofs.sock'));
    expect((await put('vm.boot')).status).toBe(204);
    // a second VMM cannot take the same disk (image lock) or the same TAP
    const other = join(dir, 'other.sock');
    await host.startVmm(other, { logFile: join(dir, 'other.log') });
    await host.startVirtiofsd(join(dir, 'virtiofs2.sock'));
    const config = vmConfig(dir, 'tap0') as { fs: Array<{ socket: string }> };
    config.fs[0]!.socket = join(dir, 'virtiofs2.sock');
    await put('vm.create', config, other);
    expectRefusal(await put('vm.boot', undefined, other), 500, 'Resource temporarily unavailable (os error 11)');
  });

  it('lets a VMM go with vmm.shutdown: its socket stops answering and its virtiofsd exits', async () => {
    await runningVm();
    expect((await put('vmm.shutdown')).status).toBe(200);
    await gone(socket);
    await expect(chRequest(socket, 'GET', 'vmm.ping')).rejects.toThrow();
    expect(host.vmm(socket)).toBeUndefined();
    await host.startVmm(socket, { logFile: join(dir, 'vmm.log') });
    await put('vm.create', vmConfig(dir, 'tap0'));
    expectRefusal(await put('vm.boot'), 500, /No such file or directory|Connection refused/);
  });
});

describe('fake cloud-hypervisor: snapshot and restore rules', () => {
  it('snapshots only a paused VM, only into an existing file:// directory, recording disks, virtiofs sockets and TAPs', async () => {
    await runningVm();
    const snap = join(dir, 'snap');
    await mkdir(snap);
    expectRefusal(await put('vm.snapshot', { destination_url: `file://${snap}` }), 500, 'Trying to snapshot while VM is running');
    expect((await put('vm.pause')).status).toBe(204);
    expectRefusal(await put('vm.snapshot', { destination_url: `file://${join(dir, 'missing')}` }), 500, 'Destination is not a directory');
    expectRefusal(await put('vm.snapshot', { destination_url: snap }), 500, /Could not extract path from URL/);
    expect((await put('vm.snapshot')).status).toBe(400);
    expect((await put('vm.snapshot', { destination_url: `file://${snap}` })).status).toBe(204);
    const config = JSON.parse(await readFile(join(snap, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      disks: [{ path: join(dir, 'rootfs.raw') }],
      fs: [{ tag: 'workspace', socket: join(dir, 'virtiofs.sock') }],
      net: [{ tap: 'tap0' }],
    });
    expect(JSON.parse(await readFile(join(snap, 'state.json'), 'utf8'))).toBeTruthy();
  });

  it('restores only into an empty VMM, only from a snapshot dir, only with virtiofsd, TAP and disks in place; the VM comes back paused', async () => {
    await runningVm();
    host.vmm(socket)!.guestExec(['sh', '-c', 'echo kept > /f']);
    const snap = join(dir, 'snap');
    await mkdir(snap);
    await put('vm.pause');
    await put('vm.snapshot', { destination_url: `file://${snap}` });
    // restore only into a VMM with no VM
    expectRefusal(await put('vm.restore', { source_url: `file://${snap}` }), 500, 'VM is already created');
    await put('vmm.shutdown');
    await gone(socket);
    const fresh = join(dir, 'fresh.sock');
    await host.startVmm(fresh, { logFile: join(dir, 'fresh.log') });
    const restore = (source: string): Promise<RawAnswer> => put('vm.restore', { source_url: `file://${source}` }, fresh);
    expectRefusal(await restore(join(dir, 'nowhere')), 500, 'Destination is not a directory');
    await mkdir(join(dir, 'empty'));
    expectRefusal(await restore(join(dir, 'empty')), 500, 'No such file or directory (os error 2)');
    // virtiofsd exited with the old VMM: the recorded socket must listen again
    expectRefusal(await restore(snap), 500, /No such file or directory|Connection refused/);
    await host.startVirtiofsd(join(dir, 'virtiofs.sock'));
    host.taps.delete('tap0');
    expectRefusal(await restore(snap), 500, 'Operation not permitted (os error 1)');
    host.taps.add('tap0');
    await rm(join(dir, 'rootfs.raw'));
    expectRefusal(await restore(snap), 500, 'No such file or directory (os error 2)');
    await writeFile(join(dir, 'rootfs.raw'), JSON.stringify({ '/f': 'kept\n' }));
    // a failed restore leaves the VMM empty (vm_delete on failure), so it can be retried
    expect((await restore(snap)).status).toBe(204);
    expect((await chRequest(fresh, 'GET', 'vm.info')).json).toMatchObject({ state: 'Paused' });
    expect(host.vmm(fresh)!.guestReady()).toBe(false);
    expect((await put('vm.resume', undefined, fresh)).status).toBe(204);
    expect(host.vmm(fresh)!.guestExec(['cat', '/f']).stdout).toBe('kept\n');
  });

  it('brings a restored guest up corrupt when its disks are not the ones snapshotted with it', async () => {
    await runningVm();
    const snap = join(dir, 'snap');
    await mkdir(snap);
    await put('vm.pause');
    await put('vm.snapshot', { destination_url: `file://${snap}` });
    await put('vm.resume');
    host.vmm(socket)!.guestExec(['sh', '-c', 'echo later > /f']); // writes through to the disk
    await put('vmm.shutdown');
    await gone(socket);
    await host.startVirtiofsd(join(dir, 'virtiofs.sock'));
    const fresh = join(dir, 'fresh.sock');
    await host.startVmm(fresh, { logFile: join(dir, 'fresh.log') });
    expect((await put('vm.restore', { source_url: `file://${snap}`, resume: true }, fresh)).status).toBe(204);
    const r = host.vmm(fresh)!.guestExec(['cat', '/f']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/EXT4-fs error/);
  });
});
