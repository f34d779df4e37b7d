import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloudHypervisorApi } from '../../../agent/src/backends/cloud-hypervisor-api.js';
import { spawnCloudHypervisor } from '../../../agent/src/backends/cloud-hypervisor-host.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

// The production startVmm, run against a stand-in binary (a node script).
const binary = fileURLToPath(new URL('../../fakes/cloud-hypervisor/fake-ch-binary.mjs', import.meta.url));

let dir: string;
const started: number[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-chspawn-'));
});
afterEach(async () => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid); // only the stand-ins this file started
    } catch {
      // already gone
    }
  }
  delete process.env['FAKE_CH_EXIT'];
  await rm(dir, { recursive: true, force: true });
});

describe('spawnCloudHypervisor', () => {
  it('starts a detached VMM and resolves once that process answers; vmm.shutdown ends it', async () => {
    const socket = join(dir, 'api.sock');
    await spawnCloudHypervisor(binary)(socket, { logFile: join(dir, 'vmm.log') });
    const api = new CloudHypervisorApi(socket);
    const { pid } = await api.ping();
    started.push(pid!);
    expect(await readFile(join(dir, 'vmm.log'), 'utf8')).toContain(`listening on ${socket}`);
    await api.shutdownVmm();
    await new Promise((r) => setTimeout(r, 100));
    expect(isWarmstartError(await api.ping().catch((e: unknown) => e), 'BACKEND_UNAVAILABLE')).toBe(true);
  });

  it('says BACKEND_UNAVAILABLE at once for a binary that is not there', async () => {
    const t0 = Date.now();
    const err = await spawnCloudHypervisor(join(dir, 'no-such-binary'))(join(dir, 'api.sock'), { logFile: join(dir, 'vmm.log') }).catch(
      (e: unknown) => e,
    );
    expect(isWarmstartError(err, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('retries a VMM that exits at once (socket still locked), then gives up with the log named', async () => {
    process.env['FAKE_CH_EXIT'] = 'Error: API socket in use';
    const t0 = Date.now();
    const err = await spawnCloudHypervisor(binary, { timeoutMs: 600 })(join(dir, 'api.sock'), { logFile: join(dir, 'vmm.log') }).catch(
      (e: unknown) => e,
    );
    expect(isWarmstartError(err, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect((err as { detail: string }).detail).toContain(join(dir, 'vmm.log'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    const tries = (await readFile(join(dir, 'vmm.log'), 'utf8')).split('\n').filter((l) => l.includes('in use'));
    expect(tries.length).toBeGreaterThan(1);
  });

  it('does not take an old VMM still answering on the socket for the new one', async () => {
    const socket = join(dir, 'api.sock');
    const old: Server = createServer((_req, res) => res.writeHead(200).end(JSON.stringify({ version: '53.0', pid: 1 })));
    await new Promise<void>((resolve) => old.listen(socket, () => resolve()));
    process.env['FAKE_CH_EXIT'] = 'Error: API socket in use';
    const err = await spawnCloudHypervisor(binary, { timeoutMs: 400 })(socket, { logFile: join(dir, 'vmm.log') }).catch((e: unknown) => e);
    await new Promise<void>((resolve) => old.close(() => resolve()));
    expect(isWarmstartError(err, 'BACKEND_UNAVAILABLE')).toBe(true);
  });
});
