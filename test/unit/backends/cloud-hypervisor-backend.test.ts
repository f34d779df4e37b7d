import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudHypervisorBackend } from '../../../agent/src/backends/cloud-hypervisor.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { chRequest } from '../../fakes/cloud-hypervisor/base-image.js';
import { chTestbed, type ChTestbed } from '../../fakes/cloud-hypervisor/testbed.js';

let t: ChTestbed;
let backend: CloudHypervisorBackend;

beforeEach(async () => {
  t = await chTestbed();
  backend = t.backend();
});
afterEach(async () => {
  await t.close();
});

async function caught(p: Promise<unknown>): Promise<{ code?: string; message: string; detail?: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').not.toBeNull();
  if (!isWarmstartError(err)) throw err;
  return { code: err.code, message: err.message, detail: err.detail };
}

describe('cloud-hypervisor backend: the order of things', () => {
  it('launches: fresh VMM, vm.restore, vm.resume, then credentials', async () => {
    const mark = t.host.events.length;
    await backend.launch('base', 'm1');
    expect(t.since(mark, t.layout.apiSocket('m1'))).toEqual(['spawn', 'PUT vm.restore', 'PUT vm.resume', 'note:inject:m1']);
    expect(await backend.listMachines()).toEqual([{ name: 'm1', state: 'running' }]);
  });

  it('snapshots: wipe credentials, pause, snapshot, resume, inject', async () => {
    await backend.launch('base', 'm1');
    const mark = t.host.events.length;
    await backend.snapshot('m1', 's1');
    expect(t.since(mark)).toEqual(['note:wipe:m1', 'PUT vm.pause', 'PUT vm.snapshot', 'PUT vm.resume', 'note:inject:m1']);
    expect((await chRequest(t.layout.apiSocket('m1'), 'GET', 'vm.info')).json).toMatchObject({ state: 'Running' });
  });

  it('captures an image the same way, leaving the machine running', async () => {
    await backend.launch('base', 'm1');
    const mark = t.host.events.length;
    const image = await backend.captureImage('m1', 'golden', { 'dev.warmstart.os': 'linux' });
    expect(image).toMatchObject({ name: 'golden', properties: { 'dev.warmstart.os': 'linux' }, createdAt: expect.any(String) });
    expect(t.since(mark)).toEqual(['note:wipe:m1', 'PUT vm.pause', 'PUT vm.snapshot', 'PUT vm.resume', 'note:inject:m1']);
    expect((await backend.listImages('gold')).map((i) => i.properties)).toEqual([{ 'dev.warmstart.os': 'linux' }]);
  });

  it('restores: stops the old VMM, fresh VMM, vm.restore, vm.resume, then credentials', async () => {
    await backend.launch('base', 'm1');
    await backend.exec('m1', ['sh', '-c', 'echo one > /x']);
    await backend.snapshot('m1', 's1');
    await backend.exec('m1', ['sh', '-c', 'echo two > /x']);
    const mark = t.host.events.length;
    await backend.restore('m1', 's1');
    expect(t.since(mark)).toEqual(['PUT vmm.shutdown', 'spawn', 'PUT vm.restore', 'PUT vm.resume', 'note:inject:m1']);
    expect((await backend.exec('m1', ['cat', '/x'])).stdout).toBe('one\n');
  });

  it('snapshots a machine found paused without pausing or resuming it', async () => {
    await backend.launch('base', 'm1');
    await chRequest(t.layout.apiSocket('m1'), 'PUT', 'vm.pause');
    const mark = t.host.events.length;
    await backend.snapshot('m1', 's1');
    expect(t.since(mark)).toEqual(['note:wipe:m1', 'PUT vm.snapshot', 'note:inject:m1']);
    expect(await backend.listMachines()).toEqual([{ name: 'm1', state: 'paused' }]);
  });
});

describe('cloud-hypervisor backend: host things checked before the VMM is asked', () => {
  it('a restore whose virtiofs socket nobody listens on fails with a typed error before vm.restore', async () => {
    let virtiofsd = true;
    backend = t.backend({ hooks: { ensureVirtiofsd: async (s) => (virtiofsd ? t.host.startVirtiofsd(s) : undefined) } });
    await backend.launch('base', 'm1');
    await backend.snapshot('m1', 's1');
    virtiofsd = false;
    const mark = t.host.events.length;
    const err = await caught(backend.restore('m1', 's1'));
    expect(err.code).toBe('BACKEND_PRECONDITION');
    expect(err.message).toContain(`virtiofsd is not listening on ${t.layout.virtiofsSocket('m1', 0)}`);
    expect(t.since(mark)).not.toContain('PUT vm.restore');
    expect(t.since(mark)).not.toContain('spawn');
  });

  it('the default virtiofsd hook checks the socket and says what to start', async () => {
    backend = t.backend({ hooks: { ensureVirtiofsd: undefined } });
    const mark = t.host.events.length;
    const err = await caught(backend.launch('base', 'm1'));
    expect(err).toMatchObject({ code: 'BACKEND_PRECONDITION', message: expect.stringContaining('virtiofsd is not listening') });
    expect(err.detail).toContain('virtiofsd --socket-path=');
    expect(t.since(mark)).toEqual([]);
    expect(await backend.listMachines()).toEqual([]);
  });

  it('a missing TAP is a typed error before the VMM is asked (default hook: /sys/class/net)', async () => {
    backend = t.backend({ hooks: { ensureTap: undefined } });
    const mark = t.host.events.length;
    const err = await caught(backend.launch('base', 'm1'));
    expect(err.code).toBe('BACKEND_PRECONDITION');
    expect(err.message).toMatch(/^TAP device wst[0-9a-f]{8}0 does not exist$/);
    expect(t.since(mark)).toEqual([]);
  });

  it('a TAP hook that fails (the host has no such TAP) stops a restore with a typed error before the VMM is touched', async () => {
    await backend.launch('base', 'm1');
    await backend.snapshot('m1', 's1');
    const tap = t.host.vmm(t.layout.apiSocket('m1'))!.vm!.config.net![0]!.tap!;
    t.host.taps.delete(tap);
    const checking = t.backend({
      hooks: {
        ensureTap: async (name) => {
          if (!t.host.taps.has(name)) throw new Error(`no ${name} on this host`);
        },
      },
    });
    const mark = t.host.events.length;
    const err = await caught(checking.restore('m1', 's1'));
    expect(err).toMatchObject({ code: 'BACKEND_PRECONDITION', message: `TAP device ${tap} is not available`, detail: `no ${tap} on this host` });
    expect(t.since(mark)).toEqual([]); // checked before the running VMM was even stopped
    expect(await checking.listMachines()).toEqual([{ name: 'm1', state: 'running' }]);
  });
});

describe('cloud-hypervisor backend: machines of one image, timing, readiness', () => {
  it('gives every machine launched from one image its own disks, virtiofs sockets and TAPs', async () => {
    await backend.launch('base', 'm1');
    await backend.launch('base', 'm2');
    const config = (m: string) => t.host.vmm(t.layout.apiSocket(m))!.vm!.config;
    expect(config('m1').disks![0]!.path).toBe(t.layout.disk('m1', 0, 'rootfs.raw'));
    expect(config('m2').disks![0]!.path).toBe(t.layout.disk('m2', 0, 'rootfs.raw'));
    expect(config('m1').fs![0]!.socket).toBe(t.layout.virtiofsSocket('m1', 0));
    expect(config('m1').net![0]!.tap).not.toBe(config('m2').net![0]!.tap);
    await backend.exec('m1', ['sh', '-c', 'echo mine > /only-m1']);
    expect((await backend.exec('m2', ['cat', '/only-m1'])).exitCode).toBe(1);
  });

  it('reports restore-to-ready time for launches and restores', async () => {
    t.host.readyDelayMs = 60;
    await backend.launch('base', 'm1');
    await backend.snapshot('m1', 's1');
    await backend.restore('m1', 's1');
    expect(t.timings.map((x) => x.operation)).toEqual(['launch', 'restore']);
    for (const timing of t.timings) {
      expect(timing.readyMs).toBeGreaterThanOrEqual(50);
      expect(timing.restoreToReadyMs).toBeGreaterThanOrEqual(timing.readyMs);
      expect(timing.restoreToReadyMs).toBeLessThan(5000);
    }
  });

  it('waits for the guest a bounded time, then fails and removes the half-launched machine', async () => {
    t.host.readyDelayMs = 60_000;
    backend = t.backend({ readyTimeoutMs: 150 });
    const err = await caught(backend.launch('base', 'm1'));
    expect(err).toMatchObject({ code: 'BACKEND_ERROR', message: 'the guest of machine m1 was not ready within 150 ms' });
    expect(await backend.listMachines()).toEqual([]);
    expect(t.host.vmm(t.layout.apiSocket('m1'))).toBeUndefined();
  });

  it('lists machine states from vm.info: running, paused, stopped when the VMM is gone', async () => {
    await backend.launch('base', 'm1');
    await backend.launch('base', 'm2');
    await chRequest(t.layout.apiSocket('m1'), 'PUT', 'vm.pause');
    await t.host.vmm(t.layout.apiSocket('m2'))!.close();
    expect(await backend.listMachines()).toEqual([
      { name: 'm1', state: 'paused' },
      { name: 'm2', state: 'stopped' },
    ]);
    // a machine whose VMM died restores into a fresh one all the same
    await backend.restore('m1', (await backend.snapshot('m1', 's')).name);
    expect((await backend.listMachines())[0]).toEqual({ name: 'm1', state: 'running' });
  });

  it('refuses bad names, taken names and what does not exist, with typed errors', async () => {
    await backend.launch('base', 'm1');
    expect((await caught(backend.launch('base', '../x'))).code).toBe('INVALID_ARGUMENT');
    expect((await caught(backend.launch('base', 'm1'))).code).toBe('BACKEND_PRECONDITION');
    await backend.captureImage('m1', 'img');
    expect((await caught(backend.captureImage('m1', 'img'))).code).toBe('BACKEND_PRECONDITION');
    await backend.snapshot('m1', 's1');
    expect((await caught(backend.snapshot('m1', 's1'))).code).toBe('BACKEND_PRECONDITION');
    expect((await caught(backend.restore('m1', 'nope'))).code).toBe('SNAPSHOT_NOT_FOUND');
    expect((await caught(backend.deleteSnapshot('m1', 'nope'))).code).toBe('SNAPSHOT_NOT_FOUND');
    expect((await caught(backend.listSnapshots('ghost'))).code).toBe('MACHINE_NOT_FOUND');
    expect((await caught(backend.removeMachine('ghost'))).code).toBe('MACHINE_NOT_FOUND');
    expect((await caught(backend.removeImage('nope'))).code).toBe('IMAGE_NOT_FOUND');
  });
});
