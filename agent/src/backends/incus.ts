/**
 * The Incus backend over the daemon's REST API on its unix socket. LXD
 * serves the same API for every call here, so the same code runs against
 * LXD (the tests use a real LXD 5.0). Images are named by alias; machines are
 * instances (containers, or VMs when the image is one).
 */
import { createHash, randomBytes } from 'node:crypto';
import { isWarmstartError, WarmstartError } from '../errors.js';
import type { ExecResult, LaunchFile, Machine, MachineImage, MachineState, SnapshotBackend, StateSnapshot } from './backend.js';
import { IncusClient, type IncusClientOptions } from './incus-client.js';
import { incusExec, incusWriteFile } from './incus-exec.js';

/** Options of {@link IncusBackend}: where the daemon is and how long to wait for it. */
export type IncusBackendOptions = IncusClientOptions;

interface Instance {
  name: string;
  status: string;
}
interface Alias {
  name: string;
  target: string;
  type?: string;
}
interface Image {
  fingerprint: string;
  aliases: { name: string }[] | null;
  properties: Record<string, string> | null;
  created_at: string;
}
interface Snapshot {
  name: string;
  created_at: string;
}
interface InstanceMetadata {
  templates?: Record<string, { when: string[]; create_only: boolean; template: string; properties: Record<string, string> }> | null;
  [field: string]: unknown;
}

/** Instance names as the daemon accepts them; checked here so a bad name is the caller's error, not the daemon's. */
const MACHINE_NAME = /^[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
/** Temporary snapshots made to publish a running instance; deleted right after. */
const PUBLISH_SNAPSHOT_PREFIX = 'warmstart-publish-';

export class IncusBackend implements SnapshotBackend {
  readonly name = 'incus' as const;
  private readonly api: IncusClient;

  constructor(options: IncusBackendOptions = {}) {
    this.api = new IncusClient(options);
  }

  async launch(image: string, machine: string, options: { files?: LaunchFile[] } = {}): Promise<Machine & { filesWritten: string[] }> {
    checkMachineName(machine);
    const [alias, taken] = await Promise.all([
      this.api.get<Alias>(aliasPath(image), { notFound: 'IMAGE_NOT_FOUND' }),
      this.api.exists(instancePath(machine)),
    ]);
    // Creating over an existing name fails only inside the operation, as a generic 400: say it plainly first.
    if (taken) throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} already exists`);
    const source = { type: 'image', alias: image };
    const files = options.files ?? [];
    // The image's create template for each path renders its config key into the file on the first start.
    const config = Object.fromEntries(files.map((f) => [launchFileKey(f.path), f.content]));
    await this.api.run('POST', '/1.0/instances', { name: machine, type: alias.type ?? 'container', source, config });
    try {
      await this.setState(machine, 'start');
    } catch (err) {
      // a machine that never ran is of no use to anyone: do not leave it behind
      await this.api.run('DELETE', instancePath(machine), undefined).catch(() => undefined);
      throw err;
    }
    return { name: machine, state: 'running', filesWritten: files.map((f) => f.path) };
  }

  /**
   * Adds an image template to the instance's metadata: `path` rendered from
   * the config key `launchFileKey(path)` whenever an instance is created (or
   * copied) from an image published from it. The daemon renders it before
   * the instance's first start, parent directories included, mode 0644.
   */
  async addLaunchTemplate(machine: string, path: string): Promise<void> {
    if (!path.startsWith('/') || path.split('/').includes('..')) throw new WarmstartError('INVALID_ARGUMENT', `not an absolute path: ${path}`);
    const key = launchFileKey(path);
    const template = `${key.replace(/^user\./, '').replaceAll('.', '-')}.tpl`;
    const base = `${instancePath(machine)}/metadata`;
    await this.api.raw(
      'POST',
      `${base}/templates?path=${encodeURIComponent(template)}`,
      Buffer.from(`{{ config_get("${key}", "") }}`),
      {
        'content-type': 'application/octet-stream',
      },
      { notFound: 'MACHINE_NOT_FOUND' },
    );
    const metadata = await this.api.get<InstanceMetadata>(base, { notFound: 'MACHINE_NOT_FOUND' });
    const templates = { ...(metadata.templates ?? {}), [path]: { when: ['create', 'copy'], create_only: false, template, properties: {} } };
    await this.api.run('PUT', base, { ...metadata, templates }, { notFound: 'MACHINE_NOT_FOUND' });
  }

  exec(machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> {
    return incusExec(this.api, machine, argv, options.input);
  }

  /**
   * Publishes the machine as an image and aliases it. LXD refuses to publish
   * a running instance ("Cannot export a running instance as an image"), and
   * stopping it would kill whatever provisioning started (and a busybox init
   * takes seconds to stop cleanly). So a running machine is snapshotted and
   * the snapshot published: the machine keeps running untouched.
   */
  async captureImage(machine: string, image: string, properties: Record<string, string> = {}): Promise<MachineImage> {
    const inst = await this.api.get<Instance>(instancePath(machine), { notFound: 'MACHINE_NOT_FOUND' });
    if (await this.api.exists(aliasPath(image))) {
      throw new WarmstartError('BACKEND_PRECONDITION', `image ${image} already exists`);
    }
    let snapshot: string | null = null;
    if (inst.status !== 'Stopped') {
      snapshot = `${PUBLISH_SNAPSHOT_PREFIX}${randomBytes(4).toString('hex')}`;
      await this.api.run('POST', `${instancePath(machine)}/snapshots`, { name: snapshot }, { notFound: 'MACHINE_NOT_FOUND' });
    }
    try {
      const source = snapshot ? { type: 'snapshot', name: `${machine}/${snapshot}` } : { type: 'instance', name: machine };
      const { fingerprint, reused } = await this.publish(source, properties);
      try {
        await this.api.run('POST', '/1.0/images/aliases', { name: image, target: fingerprint });
      } catch (err) {
        if (!reused) await this.api.run('DELETE', `/1.0/images/${fingerprint}`, undefined).catch(() => undefined); // the alias error is the one to report
        throw err;
      }
      const img = await this.api.get<Image>(`/1.0/images/${fingerprint}`);
      return { name: image, properties: img.properties ?? {}, createdAt: img.created_at ?? null };
    } finally {
      // a leftover publish snapshot is visible in the instance's list; the capture's outcome stands
      if (snapshot) await this.api.run('DELETE', snapshotPath(machine, snapshot), undefined).catch(() => undefined);
    }
  }

  async imageExists(image: string): Promise<boolean> {
    return this.api.exists(aliasPath(image));
  }

  async imageInfo(image: string): Promise<MachineImage | null> {
    const alias = await this.api.get<Alias>(aliasPath(image), { notFound: 'IMAGE_NOT_FOUND' }).catch((err: unknown) => {
      if (isWarmstartError(err, 'IMAGE_NOT_FOUND')) return null;
      throw err;
    });
    if (!alias) return null;
    const img = await this.api.get<Image>(`/1.0/images/${alias.target}`, { notFound: 'IMAGE_NOT_FOUND' });
    return { name: image, properties: img.properties ?? {}, createdAt: img.created_at ?? null };
  }

  writeFile(machine: string, path: string, content: Buffer, mode: number): Promise<void> {
    return incusWriteFile(this.api, machine, path, content, mode);
  }

  /** Images are their aliases: an image without one (the daemon's cached remote images) is not listed. */
  async listImages(prefix = ''): Promise<MachineImage[]> {
    const images = await this.api.get<Image[]>('/1.0/images?recursion=1');
    return images
      .flatMap((img) =>
        (img.aliases ?? [])
          .filter((a) => a.name.startsWith(prefix))
          .map((a) => ({ name: a.name, properties: img.properties ?? {}, createdAt: img.created_at ?? null })),
      )
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Deletes the image behind the alias; when other aliases still name it (identical content), only this alias. */
  async removeImage(image: string): Promise<void> {
    const alias = await this.api.get<Alias>(aliasPath(image), { notFound: 'IMAGE_NOT_FOUND' });
    const img = await this.api.get<Image>(`/1.0/images/${alias.target}`, { notFound: 'IMAGE_NOT_FOUND' });
    if ((img.aliases ?? []).length > 1) await this.api.run('DELETE', aliasPath(image), undefined);
    else await this.api.run('DELETE', `/1.0/images/${alias.target}`, undefined, { notFound: 'IMAGE_NOT_FOUND' });
  }

  async listMachines(): Promise<Machine[]> {
    const list = await this.api.get<Instance[]>('/1.0/instances?recursion=1');
    return list.map((i) => ({ name: i.name, state: machineState(i.status) }));
  }

  /** Force-stops (a clean stop of a busybox init takes seconds, and the machine is going anyway) and deletes. */
  async removeMachine(machine: string): Promise<void> {
    const inst = await this.api.get<Instance>(instancePath(machine), { notFound: 'MACHINE_NOT_FOUND' });
    if (inst.status !== 'Stopped') await this.setState(machine, 'stop');
    await this.api.run('DELETE', instancePath(machine), undefined, { notFound: 'MACHINE_NOT_FOUND' });
  }

  async snapshot(machine: string, name: string): Promise<StateSnapshot> {
    await this.api.run('POST', `${instancePath(machine)}/snapshots`, { name }, { notFound: 'MACHINE_NOT_FOUND' });
    const snap = await this.api.get<Snapshot>(snapshotPath(machine, name), { notFound: 'SNAPSHOT_NOT_FOUND' });
    return { machine, name, createdAt: snap.created_at ?? null };
  }

  /** Restores the instance's disk; a running container is restarted by the daemon and is running again on return. */
  async restore(machine: string, name: string): Promise<void> {
    await this.requireSnapshot(machine, name);
    await this.api.run('PUT', instancePath(machine), { restore: name }, { notFound: 'MACHINE_NOT_FOUND' });
  }

  async listSnapshots(machine: string): Promise<StateSnapshot[]> {
    const list = await this.api.get<Snapshot[]>(`${instancePath(machine)}/snapshots?recursion=1`, {
      notFound: 'MACHINE_NOT_FOUND',
    });
    return list.map((s) => ({ machine, name: s.name, createdAt: s.created_at ?? null }));
  }

  async deleteSnapshot(machine: string, name: string): Promise<void> {
    await this.requireSnapshot(machine, name);
    await this.api.run('DELETE', snapshotPath(machine, name), undefined, { notFound: 'SNAPSHOT_NOT_FOUND' });
  }

  /**
   * The daemon answers a missing snapshot with a 404 whose message is all
   * that tells a missing instance apart, and a restore of one fails only
   * inside the operation: ask for the instance, then the snapshot.
   */
  private async requireSnapshot(machine: string, name: string): Promise<void> {
    await this.api.get<Instance>(instancePath(machine), { notFound: 'MACHINE_NOT_FOUND' });
    await this.api.get<Snapshot>(snapshotPath(machine, name), { notFound: 'SNAPSHOT_NOT_FOUND' });
  }

  private async setState(machine: string, action: 'start' | 'stop'): Promise<void> {
    const body = action === 'stop' ? { action, force: true } : { action };
    await this.api.run('PUT', `${instancePath(machine)}/state`, body, { notFound: 'MACHINE_NOT_FOUND' });
  }

  /**
   * `POST /1.0/images`; the fingerprint is a hash of the image, so publishing
   * content identical to an existing image fails with "The image already
   * exists" — that image is then reused (the new alias points at it).
   */
  private async publish(source: object, properties: Record<string, string>): Promise<{ fingerprint: string; reused: boolean }> {
    const op = await this.api.start('POST', '/1.0/images', { source, properties, public: false });
    const fingerprint = typeof op.metadata?.fingerprint === 'string' ? op.metadata.fingerprint : '';
    if (op.status === 'Success' && fingerprint) return { fingerprint, reused: false };
    // a failed publish whose fingerprint names an existing image is exactly that case
    if (fingerprint && (await this.api.exists(`/1.0/images/${fingerprint}`))) {
      return { fingerprint, reused: true };
    }
    throw new WarmstartError('BACKEND_ERROR', `incus: publishing an image failed: ${op.err || op.status}`, {
      detail: `operation ${op.id} ${op.status}: ${op.err}`,
    });
  }
}

function checkMachineName(machine: string): void {
  if (!MACHINE_NAME.test(machine)) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `invalid machine name ${JSON.stringify(machine)}: letters, digits and dashes, starting with a letter, not ending with a dash, at most 63`,
    );
  }
}

function machineState(status: string): MachineState {
  if (status === 'Running') return 'running';
  if (status === 'Stopped') return 'stopped';
  if (status === 'Frozen') return 'paused';
  return 'unknown';
}

const instancePath = (m: string): string => `/1.0/instances/${encodeURIComponent(m)}`;
/** The instance config key a launch file's content travels in (`user.*`: free for users, kept with the instance). */
const launchFileKey = (path: string): string => `user.warmstart.file.${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
const aliasPath = (a: string): string => `/1.0/images/aliases/${encodeURIComponent(a)}`;
const snapshotPath = (m: string, s: string): string => `${instancePath(m)}/snapshots/${encodeURIComponent(s)}`;
