import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudHypervisorBackend, type CloudHypervisorBackendOptions, type RestoreTiming } from '../../../agent/src/backends/cloud-hypervisor.js';
import { ChLayout } from '../../../agent/src/backends/cloud-hypervisor-layout.js';
import { prepareBaseImage } from './base-image.js';
import { FakeChHost } from './fake-host.js';

/** A temp state dir, a fake host with a base image in it, and backends wired to both. */
export interface ChTestbed {
  dir: string;
  host: FakeChHost;
  layout: ChLayout;
  timings: RestoreTiming[];
  /** A backend on the fake: hooks create TAPs and start virtiofsd, and note wipe/inject in the host's log. */
  backend(overrides?: Partial<CloudHypervisorBackendOptions>): CloudHypervisorBackend;
  /** The host's log from `mark` on, without GETs: what changed state, in order. */
  since(mark: number, socket?: string): string[];
  close(): Promise<void>;
}

export async function chTestbed(): Promise<ChTestbed> {
  const dir = await mkdtemp(join(tmpdir(), 'ws-ch-'));
  const host = new FakeChHost();
  const layout = new ChLayout(join(dir, 'state'));
  await prepareBaseImage(host, { imagesDir: layout.imagesDir, workDir: dir, name: 'base' });
  const timings: RestoreTiming[] = [];
  return {
    dir,
    host,
    layout,
    timings,
    backend: (overrides = {}) =>
      new CloudHypervisorBackend({
        stateDir: layout.stateDir,
        startVmm: host.startVmm,
        guest: host.guest((m) => layout.apiSocket(m)),
        onTiming: (t) => timings.push(t),
        ...overrides,
        hooks: {
          ensureTap: async (name) => void host.taps.add(name),
          ensureVirtiofsd: (socket) => host.startVirtiofsd(socket),
          wipeCredentials: async (m) => host.note(`wipe:${m}`),
          injectCredentials: async (m) => host.note(`inject:${m}`),
          ...overrides.hooks,
        },
      }),
    since: (mark, socket) =>
      host.events
        .slice(mark)
        .filter((e) => socket === undefined || e.socket === socket || e.socket === null)
        .filter((e) => !e.what.startsWith('GET '))
        .map((e) => (e.status !== undefined && e.status >= 300 ? `${e.what} ${e.status}` : e.what)),
    close: async () => {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
