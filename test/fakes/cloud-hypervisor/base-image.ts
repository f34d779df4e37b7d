import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type { FakeChHost } from './fake-host.js';

/** A raw answer from a VMM, for tests that speak to it without the client under test. */
export interface RawAnswer {
  status: number;
  text: string;
  /** the parsed body when it is JSON */
  json: unknown;
}

/** One raw HTTP request to a VMM's API socket; nothing is normalised (wrong methods and stray bodies go as given). */
export function chRequest(socket: string, method: string, endpoint: string, body?: unknown): Promise<RawAnswer> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, method, path: `/api/v1/${endpoint}`, headers: { 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A VM config like a real one: a kernel payload, one disk, one virtiofs share, one TAP NIC. */
export function vmConfig(dir: string, tap: string): Record<string, unknown> {
  return {
    payload: { kernel: '/opt/fake/vmlinux', cmdline: 'console=hvc0 root=/dev/vda1 rw' },
    cpus: { boot_vcpus: 1, max_vcpus: 1 },
    memory: { size: 536870912, shared: true },
    disks: [{ path: join(dir, 'rootfs.raw') }],
    fs: [{ tag: 'workspace', socket: join(dir, 'virtiofs.sock'), num_queues: 1, queue_size: 1024 }],
    net: [{ tap, mac: '52:54:00:12:34:56' }],
  };
}

/**
 * Makes a base image the way an operator would: boot a VM in a VMM, pause
 * it, `vm.snapshot` into `<imagesDir>/<name>`, stop the VMM. It is a bare CH
 * snapshot dir (no disk copies): its disk stays at the recorded path.
 */
export async function prepareBaseImage(host: FakeChHost, o: { imagesDir: string; workDir: string; name: string }): Promise<string> {
  const dir = join(o.workDir, 'base-vm');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'rootfs.raw'), '{}');
  const tap = 'wsbase0';
  host.taps.add(tap);
  const socket = join(dir, 'api.sock');
  const config = vmConfig(dir, tap);
  await host.startVirtiofsd(join(dir, 'virtiofs.sock'));
  await host.startVmm(socket, { logFile: join(dir, 'vmm.log') });
  const image = join(o.imagesDir, o.name);
  await mkdir(image, { recursive: true });
  for (const [endpoint, body] of [
    ['vm.create', config],
    ['vm.boot', undefined],
    ['vm.pause', undefined],
    ['vm.snapshot', { destination_url: `file://${image}` }],
    ['vmm.shutdown', undefined],
  ] as const) {
    const answer = await chRequest(socket, 'PUT', endpoint, body);
    if (answer.status >= 300) throw new Error(`${endpoint}: ${answer.status} ${answer.text}`);
  }
  return image;
}
