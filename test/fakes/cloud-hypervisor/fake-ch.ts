import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ExecResult } from '../../../agent/src/backends/backend.js';
import type { ChVmConfig, ChVmState } from '../../../agent/src/backends/cloud-hypervisor-api.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { runInGuest } from './fake-guest.js';

/**
 * One fake cloud-hypervisor VMM: a real node:http server on a unix socket
 * speaking the REST API (vmm/src/api/openapi/cloud-hypervisor.yaml) with
 * upstream's state machine, status codes and error bodies. It refuses what
 * the real VMM refuses; each rule cites where upstream has it. Texts of the
 * innermost device errors are approximations; the chain shape (outermost
 * first, "Error from API" on top) is upstream's `error_response`
 * (vmm/src/api/http/mod.rs, v48+).
 *
 * Modelled version: v53+ (PR #8320): VmNotCreated/VmMissingConfig are 404,
 * every other API error 500 (issue #8678: no wrong-state 405/409 is ever
 * sent, and a wrong HTTP method is 400, not the documented 405).
 */

export interface FakeVm {
  config: ChVmConfig;
  /** 'Created' also stands for "config only, no Vm object" (after create, or after vm.shutdown drops the Vm). */
  state: ChVmState;
  /** the guest's files: in memory (saved in state.json) and written through to disk 0 */
  files: Map<string, string>;
  resumedAt: number;
  /** set when a restored VM's disks differ from what its memory expects */
  corrupt?: string;
}

/** What a VMM needs from the fake host: the TAPs that exist, the other VMMs, the log. */
export interface VmmHost {
  readonly taps: ReadonlySet<string>;
  readyDelayMs: number;
  others(self: FakeVmm): FakeVmm[];
  record(socket: string, what: string, status?: number): void;
  /** the VMM process ended */
  gone(self: FakeVmm): void;
  /** a VM let go of its devices (virtiofsd serves one frontend and exits when it disconnects) */
  released(config: ChVmConfig): void;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly messages: string[] | null,
  ) {
    super(messages?.join(': ') ?? `HTTP ${status}`);
  }
}

/** An ApiError chain as error_response renders it: top to root. */
const apiError = (status: number, action: string, ...chain: string[]): Refusal => new Refusal(status, ['Error from API', action, ...chain]);
const badRequest = (): Refusal => new Refusal(400, ['Bad Request']);
const ENOENT = 'No such file or directory (os error 2)';
const STATE_KEY = 'fake-cloud-hypervisor';

function digest(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}

/** A cold boot sees what the guest last wrote to its disk (the fake keeps it as JSON). */
function readGuestDisk(path: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}

function canConnect(path: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? 'Connection refused (os error 111)' : ENOENT));
  });
}

type Route = { method: 'GET' | 'PUT'; body: 'none' | 'json'; run: (body: Record<string, unknown>) => Promise<unknown> };

export class FakeVmm {
  vm: FakeVm | null = null;
  private readonly server: Server;
  private readonly routes: Record<string, Route>;

  constructor(
    readonly socketPath: string,
    private readonly host: VmmHost,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
    const put = (run: Route['run'], body: Route['body'] = 'none'): Route => ({ method: 'PUT', body, run });
    this.routes = {
      'vmm.ping': {
        method: 'GET',
        body: 'none',
        run: async () => ({ build_version: 'v53.0-fake', version: '53.0', pid: process.pid, features: ['kvm'] }),
      },
      'vmm.shutdown': put(async () => 'shutdown'),
      'vm.info': { method: 'GET', body: 'none', run: async () => this.info() },
      'vm.create': put((b) => this.create(b), 'json'),
      'vm.boot': put(() => this.boot()),
      'vm.pause': put(async () => this.pause()),
      'vm.resume': put(async () => this.resume()),
      'vm.snapshot': put((b) => this.snapshot(b), 'json'),
      'vm.restore': put((b) => this.restore(b), 'json'),
      'vm.shutdown': put(async () => this.shutdown()),
      'vm.delete': put(async () => {
        this.release();
        this.vm = null; // vm_delete: Ok even without a VM
      }),
    };
  }

  async listen(): Promise<void> {
    // Upstream removes a stale socket before binding (start_http_path_thread).
    await rm(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
  }

  /** Set while the process is exiting: its socket no longer answers but it still holds the socket's lock. */
  closing: Promise<void> | null = null;

  /** The VMM process ends: its VM goes with it. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.release();
      this.vm = null;
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.host.gone(this);
    })();
    return this.closing;
  }

  /** Whether this VMM holds devices (a booted or restored Vm object exists). */
  get attached(): boolean {
    return this.vm !== null && (this.vm.state === 'Running' || this.vm.state === 'Paused');
  }

  private release(): void {
    if (this.attached) this.host.released(this.vm!.config);
  }

  guestReady(): boolean {
    return this.vm?.state === 'Running' && Date.now() - this.vm.resumedAt >= this.host.readyDelayMs;
  }

  /** exec in the guest: only a running guest answers (a paused one is unreachable). */
  guestExec(argv: string[], input?: string): ExecResult {
    if (!this.vm || !this.guestReady()) {
      throw new WarmstartError('BACKEND_UNAVAILABLE', `guest unreachable (VM ${this.vm?.state ?? 'absent'})`);
    }
    if (this.vm.corrupt) return { exitCode: 1, stdout: '', stderr: this.vm.corrupt };
    const result = runInGuest(this.vm.files, argv, input);
    const disk = this.vm.config.disks?.[0]?.path;
    if (disk) writeFileSync(disk, JSON.stringify(Object.fromEntries(this.vm.files)));
    return result;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const endpoint = (req.url ?? '').replace(/^\/api\/v1\//, '');
    let status = 500;
    let payload: unknown = null;
    try {
      const route = req.url?.startsWith('/api/v1/') ? this.routes[endpoint] : undefined;
      // Unknown path: the router's HttpError::NotFound.
      if (!route) throw new Refusal(404, ['Not Found']);
      // Wrong method: 400 (EndpointHandler::handle_request; get/put_handler default to BadRequest), never 405.
      if (req.method !== route.method) {
        const bare = req.method !== 'GET' && req.method !== 'PUT' && !['vm.create', 'vm.info', 'vmm.ping', 'vmm.shutdown'].includes(endpoint);
        throw bare ? new Refusal(400, null) : badRequest();
      }
      // vm_action_put_handler!: a body on a bodiless action is BadRequest; _body! without one likewise.
      if (route.body === 'none' && raw.length > 0 && route.method === 'PUT') throw badRequest();
      if (route.body === 'json' && raw.length === 0) throw endpoint === 'vm.create' ? new Refusal(400, null) : badRequest();
      let body: Record<string, unknown> = {};
      if (route.body === 'json') {
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch (e) {
          throw new Refusal(400, ['Failed to deserialize JSON', (e as Error).message]);
        }
      }
      payload = await route.run(body);
      status = payload === undefined ? 204 : 200;
    } catch (err) {
      // a bug in the fake answers like an unexpected VMM failure, so the test sees it
      const refusal = err instanceof Refusal ? err : new Refusal(500, ['Internal Server Error', `fake bug: ${String(err)}`]);
      status = refusal.status;
      payload = refusal.messages;
    }
    this.host.record(this.socketPath, `${req.method} ${endpoint}`, status);
    if (payload === 'shutdown') {
      res.writeHead(200).end(); // vmm.shutdown answers 200 (http_endpoint.rs VmmShutdown), then the process exits
      res.once('finish', () => void this.close());
      return;
    }
    if (payload === undefined || payload === null) res.writeHead(status).end();
    else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
  }

  private info(): unknown {
    // vm_info without a config: VmNotCreated -> 404 since v53 (#8320).
    if (!this.vm) throw apiError(404, 'The VM info is not available', 'VM is not created');
    return { config: this.vm.config, state: this.vm.state, memory_actual_size: 536870912 };
  }

  private async create(body: Record<string, unknown>): Promise<undefined> {
    // VmConfig.payload is required: serde refuses the body (400).
    if (typeof body['payload'] !== 'object') throw new Refusal(400, ['Failed to deserialize JSON', 'missing field `payload`']);
    // vm_create: one VM per VMM (VmError::VmAlreadyCreated -> 500).
    if (this.vm) throw apiError(500, 'The VM could not be created', 'VM is already created');
    const config = structuredClone(body) as ChVmConfig;
    config.disks?.forEach((d, i) => (d.id ??= `_disk${i}`));
    config.fs?.forEach((f, i) => (f.id ??= `_fs${i}`));
    config.net?.forEach((n, i) => (n.id ??= `_net${i}`));
    this.vm = { config, state: 'Created', files: new Map(), resumedAt: 0 };
    return undefined;
  }

  private async boot(): Promise<undefined> {
    // vm_boot without a config: VmMissingConfig -> 404.
    if (!this.vm) throw apiError(404, 'The VM could not boot', 'VM config is missing');
    // Vm::boot on a paused VM resumes it; from Running, VmState::valid_transition refuses.
    if (this.vm.state === 'Paused') return this.resume();
    if (this.vm.state !== 'Created') throw apiError(500, 'The VM could not boot', `invalid VM state transition: ${this.vm.state} to Running`);
    await this.attach(this.vm.config, 'The VM could not boot');
    const disk = this.vm.config.disks?.[0]?.path;
    this.vm.files = new Map(Object.entries(disk ? readGuestDisk(disk) : {}));
    this.vm.state = 'Running';
    this.vm.resumedAt = Date.now();
    return undefined;
  }

  private pause(): undefined {
    // vm_pause without a Vm object: VmNotRunning; Paused->Paused: Vm::pause's valid_transition.
    if (!this.attached) throw apiError(500, 'The VM could not be paused', 'VM is not running');
    if (this.vm!.state === 'Paused') {
      throw apiError(
        500,
        'The VM could not be paused',
        'Cannot pause VM',
        'Failed to pause migratable component',
        'Invalid transition: InvalidStateTransition(Paused, Paused)',
      );
    }
    this.vm!.state = 'Paused';
    return undefined;
  }

  private resume(): undefined {
    // vm_resume without a Vm object: VmNotRunning; Running->Running: Vm::resume's valid_transition.
    if (!this.attached) throw apiError(500, 'The VM could not resume', 'VM is not running');
    if (this.vm!.state === 'Running') {
      throw apiError(
        500,
        'The VM could not resume',
        'Cannot resume VM',
        'Failed to pause migratable component',
        'Invalid transition: InvalidStateTransition(Running, Running)',
      );
    }
    this.vm!.state = 'Running';
    this.vm!.resumedAt = Date.now();
    return undefined;
  }

  private shutdown(): undefined {
    // vm_shutdown takes the Vm object (VmNotRunning without one); the config stays, so vm.info says Created.
    if (!this.attached) throw apiError(500, 'The VM could not shutdown', 'VM is not running');
    this.release();
    this.vm!.state = 'Created';
    return undefined;
  }

  private async snapshot(body: Record<string, unknown>): Promise<undefined> {
    const action = 'The VM could not be snapshotted';
    // vm_snapshot without a Vm object: VmNotRunning.
    if (!this.attached) throw apiError(500, action, 'VM is not running');
    // Vm::snapshot: "Trying to snapshot while VM is running" unless Paused (vmm/src/vm.rs).
    if (this.vm!.state !== 'Paused')
      throw apiError(500, action, 'Cannot snapshot VM', 'Failed to snapshot migratable component', 'Trying to snapshot while VM is running');
    const dir = await this.dirOf(body['destination_url'], action, 'Cannot send VM snapshot');
    const vm = this.vm!;
    const disks = (vm.config.disks ?? []).map((d) => (d.path ? digest(d.path) : ''));
    await writeFile(join(dir, 'config.json'), JSON.stringify(vm.config, null, 2));
    await writeFile(join(dir, 'state.json'), JSON.stringify({ [STATE_KEY]: { guestFiles: Object.fromEntries(vm.files), diskDigests: disks } }));
    await writeFile(join(dir, 'memory-ranges'), Buffer.alloc(4096));
    return undefined;
  }

  private async restore(body: Record<string, unknown>): Promise<undefined> {
    const action = 'The VM could not be restored';
    if (typeof body['source_url'] !== 'string') throw new Refusal(400, ['Failed to deserialize JSON', 'missing field `source_url`']);
    // vm_restore: only into a VMM with neither a Vm nor a config (VmAlreadyCreated -> 500).
    if (this.vm) throw apiError(500, action, 'VM is already created');
    // recv_vm_config/recv_vm_state: url_to_path (a dir), then config.json and state.json must open.
    const dir = await this.dirOf(body['source_url'], action, 'Cannot restore VM');
    const open = async (f: string): Promise<string> =>
      readFile(join(dir, f), 'utf8').catch(() => {
        throw apiError(500, action, 'Cannot restore VM', 'Failed to send migratable component snapshot', ENOENT);
      });
    const config = JSON.parse(await open('config.json')) as ChVmConfig;
    const state = (JSON.parse(await open('state.json')) as Record<string, { guestFiles: Record<string, string>; diskDigests: string[] }>)[STATE_KEY];
    // Devices are re-created from config.json: disks at their paths, virtiofsd listening, TAPs present.
    await this.attach(config, action);
    const vm: FakeVm = { config, state: 'Paused', files: new Map(Object.entries(state?.guestFiles ?? {})), resumedAt: 0 };
    // Disks are not in the snapshot: restored memory over other disk contents is a corrupt guest, not an API error.
    const changed = (config.disks ?? []).findIndex((d, i) => d.path && digest(d.path) !== state?.diskDigests[i]);
    if (changed >= 0) vm.corrupt = `EXT4-fs error (device vd${'abcdefgh'[changed]}): disk contents differ from the restored page cache`;
    this.vm = vm;
    // RestoreConfig.resume (newer VMMs): otherwise the restored VM stays Paused (docs/snapshot_restore.md).
    if (body['resume'] === true) this.resume();
    return undefined;
  }

  /** url_to_path (vmm/src/migration.rs): `file://` and an existing directory, else MigrateSend errors. */
  private async dirOf(url: unknown, action: string, wrapper: string): Promise<string> {
    const send = 'Failed to send migratable component snapshot';
    if (typeof url !== 'string' || !url.startsWith('file://'))
      throw apiError(500, action, wrapper, send, `Could not extract path from URL: ${String(url)}`);
    const dir = url.slice('file://'.length);
    const isDir = await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) throw apiError(500, action, wrapper, send, 'Destination is not a directory');
    return dir;
  }

  /** Device creation at boot and restore: disks open and lockable, vhost-user-fs connects, TAPs open. */
  private async attach(config: ChVmConfig, action: string): Promise<void> {
    const dm = 'Error from device manager';
    const others = this.host.others(this).filter((o) => o.attached);
    for (const d of config.disks ?? []) {
      if (!d.path) continue;
      try {
        statSync(d.path);
      } catch {
        throw apiError(500, action, dm, 'Cannot create virtio-blk device', `Failed to open disk image ${d.path}`, ENOENT);
      }
      // v46+: advisory lock per disk image, taken when devices come up (Vm::boot try_lock_disks).
      if (others.some((o) => o.vm!.config.disks?.some((x) => x.path === d.path))) {
        throw apiError(
          500,
          action,
          'Error locking disk images: Another instance likely holds a lock',
          'Resource temporarily unavailable (os error 11)',
        );
      }
    }
    for (const f of config.fs ?? []) {
      const failure = await canConnect(f.socket);
      if (failure) throw apiError(500, action, dm, 'Cannot create virtio-fs device', `Failed to connect to vhost-user socket ${f.socket}`, failure);
    }
    for (const n of config.net ?? []) {
      if (!n.tap) continue;
      // An unprivileged VMM can only open an existing persistent TAP; one already attached is busy.
      if (!this.host.taps.has(n.tap))
        throw apiError(500, action, dm, 'Cannot create virtio-net device', `Open tap device ${n.tap} failed`, 'Operation not permitted (os error 1)');
      if (others.some((o) => o.vm!.config.net?.some((x) => x.tap === n.tap))) {
        throw apiError(
          500,
          action,
          dm,
          'Cannot create virtio-net device',
          `Open tap device ${n.tap} failed`,
          'Device or resource busy (os error 16)',
        );
      }
    }
  }
}
