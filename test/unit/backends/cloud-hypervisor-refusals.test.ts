import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudHypervisorBackend } from '../../../agent/src/backends/cloud-hypervisor.js';
import { ChApiError, classifyChError, CloudHypervisorApi } from '../../../agent/src/backends/cloud-hypervisor-api.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { chTestbed, type ChTestbed } from '../../fakes/cloud-hypervisor/testbed.js';

// Every upstream precondition, met head-on with the backend bypassed (its API
// client against the fake), and met inside the backend's own flows.

let t: ChTestbed;
let backend: CloudHypervisorBackend;
let api: CloudHypervisorApi;

beforeEach(async () => {
  t = await chTestbed();
  backend = t.backend();
  await backend.launch('base', 'm1');
  api = backend.api('m1');
});
afterEach(async () => {
  await t.close();
});

async function refusal(p: Promise<unknown>): Promise<ChApiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof ChApiError)) throw new Error(`expected a ChApiError, got ${String(err)}`);
  return err;
}

describe('cloud-hypervisor refusals, backend bypassed', () => {
  it('snapshot of a running VM: BACKEND_PRECONDITION with the upstream message', async () => {
    const dir = join(t.dir, 'snap');
    await mkdir(dir);
    const err = await refusal(api.snapshot(dir));
    expect(err).toMatchObject({ code: 'BACKEND_PRECONDITION', status: 500, endpoint: 'vm.snapshot' });
    expect(err.messages[err.messages.length - 1]).toBe('Trying to snapshot while VM is running');
    expect(err.detail).toContain('Trying to snapshot while VM is running');
  });

  it('snapshot into a missing destination: BACKEND_PRECONDITION', async () => {
    await api.pause();
    const err = await refusal(api.snapshot(join(t.dir, 'missing')));
    expect(err.code).toBe('BACKEND_PRECONDITION');
    expect(err.detail).toContain('Destination is not a directory');
    await api.resume();
  });

  it('restore into a VMM that has a VM: BACKEND_PRECONDITION', async () => {
    const err = await refusal(api.restore(t.layout.image('base')));
    expect(err.code).toBe('BACKEND_PRECONDITION');
    expect(err.messages).toContain('VM is already created');
  });

  it('resume when not paused, pause when paused: BACKEND_PRECONDITION', async () => {
    expect((await refusal(api.resume())).detail).toMatch(/InvalidStateTransition\(Running, Running\)/);
    await api.pause();
    expect((await refusal(api.pause())).code).toBe('BACKEND_PRECONDITION');
  });

  it('an empty VMM: no VM is MACHINE_NOT_FOUND, a missing restore source IMAGE_NOT_FOUND; no VMM is BACKEND_UNAVAILABLE', async () => {
    const socket = join(t.dir, 'empty.sock');
    await t.host.startVmm(socket, { logFile: join(t.dir, 'empty.log') });
    const empty = new CloudHypervisorApi(socket);
    expect((await refusal(empty.info())).code).toBe('MACHINE_NOT_FOUND');
    expect((await refusal(empty.pause())).code).toBe('BACKEND_PRECONDITION'); // upstream: "VM is not running"
    expect((await refusal(empty.restore(join(t.dir, 'nowhere')))).code).toBe('IMAGE_NOT_FOUND');
    const none = new CloudHypervisorApi(join(t.dir, 'nobody.sock'));
    const err = await none.ping().catch((e: unknown) => e);
    expect(isWarmstartError(err, 'BACKEND_UNAVAILABLE')).toBe(true);
  });

  it('an endpoint the VMM lacks is BACKEND_UNSUPPORTED; a request it cannot parse BACKEND_ERROR', async () => {
    expect((await refusal(api.call('GET', 'vm.nosuch'))).code).toBe('BACKEND_UNSUPPORTED');
    const wrongMethod = await refusal(api.call('POST', 'vm.pause'));
    expect(wrongMethod).toMatchObject({ code: 'BACKEND_ERROR', status: 400 });
  });

  it('maps the statuses the OpenAPI documents and the 500s every released VMM sends', () => {
    expect(classifyChError('vm.pause', 405, [])).toBe('BACKEND_PRECONDITION');
    expect(classifyChError('vm.add-disk', 409, [])).toBe('BACKEND_PRECONDITION');
    expect(classifyChError('vm.info', 404, ['Error from API', 'The VM info is not available', 'VM is not created'])).toBe('MACHINE_NOT_FOUND');
    expect(classifyChError('vm.restore', 404, [])).toBe('BACKEND_PRECONDITION'); // documented as "already created"
    expect(classifyChError('vm.info', 500, ['Error from API', 'The VM info is not available', 'VM is not created'])).toBe('MACHINE_NOT_FOUND'); // before v53
    expect(classifyChError('vm.snapshot', 500, ['Destination is not a directory'])).toBe('BACKEND_PRECONDITION');
    expect(classifyChError('vm.restore', 500, ['Destination is not a directory'])).toBe('IMAGE_NOT_FOUND');
    expect(classifyChError('vm.boot', 500, ['Error from API', 'The VM could not boot', 'Cannot load the kernel into memory'])).toBe('BACKEND_ERROR');
  });
});

describe('cloud-hypervisor refusals met inside the backend', () => {
  it('a snapshot the VMM refuses still resumes the VM and re-injects credentials, and leaves no half snapshot', async () => {
    // the destination vanishes between mkdir and vm.snapshot, so the VMM refuses it
    backend = t.backend({
      hooks: {
        wipeCredentials: async (m) => {
          t.host.note(`wipe:${m}`);
          await rm(t.layout.snapshots(m), { recursive: true, force: true });
        },
      },
    });
    const mark = t.host.events.length;
    const err = await backend.snapshot('m1', 's1').catch((e: unknown) => e);
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION')).toBe(true);
    expect(t.since(mark)).toEqual(['note:wipe:m1', 'PUT vm.pause', 'PUT vm.snapshot 500', 'PUT vm.resume', 'note:inject:m1']);
    expect(await backend.listMachines()).toEqual([{ name: 'm1', state: 'running' }]);
    expect(await backend.listSnapshots('m1')).toEqual([]);
  });

  it('a machine whose VM was shut down is not snapshotted: typed error, nothing paused', async () => {
    await api.shutdown();
    const mark = t.host.events.length;
    const err = await backend.snapshot('m1', 's1').catch((e: unknown) => e);
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION')).toBe(true);
    expect(t.since(mark)).toEqual([]);
  });

  it('without a wipe hook nothing is captured: the default fails closed before the VM is paused', async () => {
    backend = t.backend({ hooks: { wipeCredentials: undefined } });
    const mark = t.host.events.length;
    const err = await backend.captureImage('m1', 'img').catch((e: unknown) => e);
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION')).toBe(true);
    expect(t.since(mark)).toEqual(['note:inject:m1']);
    expect(await backend.imageExists('img')).toBe(false);
  });

  it('a restore the VMM refuses leaves no VMM behind', async () => {
    await backend.snapshot('m1', 's1');
    // break the snapshot the way a lost disk copy would: its state no longer opens
    await rm(join(t.layout.snapshot('m1', 's1'), 'state.json'));
    const err = await backend.restore('m1', 's1').catch((e: unknown) => e);
    expect(isWarmstartError(err, 'SNAPSHOT_NOT_FOUND')).toBe(true);
    expect((err as { cause: ChApiError }).cause.endpoint).toBe('vm.restore');
    expect(t.host.vmm(t.layout.apiSocket('m1'))).toBeUndefined();
    expect(await backend.listMachines()).toEqual([{ name: 'm1', state: 'stopped' }]);
  });
});
