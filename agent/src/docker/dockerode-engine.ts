import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import type Docker from 'dockerode';
import DockerClient from './dockerode-module.js';
import { WarmstartError, describeError } from '../errors.js';
import { splitTag } from '../cache/image-ref.js';
import type {
  CommitSpec,
  ContainerChange,
  ContainerDetails,
  ContainerSummary,
  DockerEngine,
  ExecOutput,
  ImageDetails,
  ImageSummary,
  RegistryAuth,
  RunSpec,
  ContainerHostSettings,
} from './engine.js';
import { registryConfigFromInfo, type EngineRegistryConfig } from '../registry/insecure-registries.js';
import { classifyRegistryMessage } from './registry-errors.js';
import { singleFileTar } from './single-file-tar.js';

/** One line of a build's progress stream. */
interface BuildEvent extends ProgressEvent {
  aux?: { ID?: string };
}

interface ProgressEvent {
  error?: string;
  errorDetail?: { message?: string };
  status?: string;
  /** a push's last event names the manifest it put: `{ Tag, Digest, Size }` */
  aux?: { Digest?: string; ID?: string };
}

/** The name and tag the push and commit endpoints want (`latest` when the ref has none). */
function nameAndTag(ref: string): { name: string; tag: string } {
  const { repository, tag } = splitTag(ref);
  return { name: repository, tag: tag ?? 'latest' };
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as { statusCode?: number }).statusCode : undefined;
}

function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

/** Engine timestamps (RFC 3339 text or unix seconds) as ISO text; null when absent. */
function isoTime(value: string | number | undefined): string | null {
  if (value === undefined || value === '' || value === 0) return null;
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

const CHANGE_KINDS = ['modified', 'added', 'deleted'] as const;

/** The request never reached an engine: no socket, or nobody listening on it (the engine is restarting or gone). */
function unreachable(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

export interface DockerodeEngineOptions {
  /**
   * How long an operation waits for an engine that does not answer (a
   * restart takes seconds) before failing with DOCKER_UNAVAILABLE. Only
   * requests that never reached the engine are sent again, so nothing runs
   * twice. 0: no waiting.
   */
  engineWaitMs?: number;
  retryEveryMs?: number;
}

/** DockerEngine over the Docker Engine API (dockerode). */
/** The volume fill's helper image (fillerImage). */
export const FILLER_IMAGE = 'warmstart/volume-filler:1';

export class DockerodeEngine implements DockerEngine {
  /** an import of the filler image under way, shared by the fills that wait for it */
  private fillerImport: Promise<void> | undefined;
  private readonly engineWaitMs: number;
  private readonly retryEveryMs: number;

  constructor(
    private readonly docker: Docker = new DockerClient(),
    options: DockerodeEngineOptions = {},
  ) {
    this.engineWaitMs = options.engineWaitMs ?? 30_000;
    this.retryEveryMs = options.retryEveryMs ?? 500;
  }

  async versions(): Promise<{ version: string; apiVersion: string }> {
    try {
      const v = await this.docker.version();
      return { version: v.Version, apiVersion: v.ApiVersion };
    } catch (err) {
      throw new WarmstartError('DOCKER_UNAVAILABLE', 'the Docker engine does not answer', { cause: err, detail: describeError(err) });
    }
  }

  async registryConfig(): Promise<EngineRegistryConfig> {
    try {
      return registryConfigFromInfo(await this.docker.info());
    } catch (err) {
      throw new WarmstartError('DOCKER_UNAVAILABLE', 'the Docker engine does not answer', { cause: err, detail: describeError(err) });
    }
  }

  async version(): Promise<string> {
    try {
      const v = await this.docker.version();
      return v.Version;
    } catch (err) {
      throw new WarmstartError('DOCKER_UNAVAILABLE', 'the Docker engine does not answer', {
        cause: err,
        detail: describeError(err),
      });
    }
  }

  async waitForEngine(): Promise<void> {
    await this.call('ping', () => this.docker.ping());
  }

  async volumeExists(name: string): Promise<boolean> {
    try {
      await this.whenReachable(() => this.docker.getVolume(name).inspect());
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.failure(`inspect volume ${name}`, err);
    }
  }

  async createVolume(name: string, labels: Record<string, string>): Promise<void> {
    await this.call(`create volume ${name}`, () => this.docker.createVolume({ Name: name, Labels: labels }));
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.whenReachable(() => this.docker.getVolume(name).remove());
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove volume ${name}`, err);
    }
  }

  async imageId(ref: string): Promise<string | null> {
    return (await this.inspectImage(ref))?.id ?? null;
  }

  async imageRepoDigests(ref: string): Promise<string[]> {
    return (await this.inspectImage(ref))?.repoDigests ?? [];
  }

  async platform(): Promise<string> {
    const v = await this.call('engine version', () => this.docker.version());
    const arch = v.Arch === 'x86_64' ? 'amd64' : v.Arch === 'aarch64' ? 'arm64' : v.Arch;
    return `${v.Os}/${arch}`;
  }

  async pullImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<void> {
    const opts: Record<string, unknown> = {};
    if (auth) opts.authconfig = auth;
    if (signal) opts.abortSignal = signal;
    await this.followStream(() => this.docker.pull(ref, opts), 'pull', signal);
  }

  async tagImage(source: string, ref: string): Promise<void> {
    const { name, tag } = nameAndTag(ref);
    await this.call(`tag ${ref}`, () => this.docker.getImage(source).tag({ repo: name, tag }));
  }

  async labelImage(imageId: string, labels: Record<string, string>, ref: string): Promise<string> {
    // A build whose context is one Dockerfile, `FROM <id>`: the labels are a
    // config change only. The base is local, so nothing is pulled.
    const events = await this.call(`label image ${imageId}`, async () => {
      const context = Readable.from([singleFileTar('Dockerfile', `FROM ${imageId}\n`)]);
      const stream = await this.docker.buildImage(context, { t: ref, labels, rm: true, forcerm: true });
      return new Promise<BuildEvent[]>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (err: Error | null, out: BuildEvent[]) => (err ? reject(err) : resolve(out ?? []))),
      );
    });
    const failed = events.find((e) => e.error || e.errorDetail?.message);
    if (failed) {
      throw new WarmstartError('DOCKER_OPERATION_FAILED', `docker: label image ${imageId} failed`, {
        detail: failed.error ?? failed.errorDetail?.message ?? 'build error',
      });
    }
    const id = events.map((e) => e.aux?.ID).find((v) => typeof v === 'string');
    return id ?? (await this.call(`inspect image ${ref}`, () => this.docker.getImage(ref).inspect())).Id;
  }

  async pushImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<string | null> {
    const { name, tag } = nameAndTag(ref);
    const opts: Record<string, unknown> = { tag };
    if (auth) opts.authconfig = auth;
    if (signal) opts.abortSignal = signal;
    const events = await this.followStream(() => this.docker.getImage(name).push(opts), 'push', signal);
    const digest = events.map((e) => e.aux?.Digest).find((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d));
    return digest ?? null;
  }

  async removeImage(ref: string): Promise<void> {
    try {
      await this.whenReachable(() => this.docker.getImage(ref).remove({ force: true }));
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove image ${ref}`, err);
    }
  }

  async containerImageId(containerId: string): Promise<string> {
    const info = await this.call(`inspect container ${containerId}`, () => this.docker.getContainer(containerId).inspect());
    return info.Image;
  }

  async findContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const list = await this.call('list containers', () => this.docker.listContainers({ all: true, filters: { label } }));
    return list.map((c) => ({ id: c.Id, image: c.Image, state: c.State, labels: c.Labels ?? {} }));
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.whenReachable(() => this.docker.getContainer(id).remove({ force: true, v: false }));
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove container ${id}`, err);
    }
  }

  async runContainer(spec: RunSpec): Promise<string> {
    const binds = [
      ...Object.entries(spec.volumes ?? {}).map(([vol, target]) => `${vol}:${target}`),
      ...Object.entries(spec.readOnlyBinds ?? {}).map(([dir, target]) => `${dir}:${target}:ro`),
    ];
    const container = await this.call(`create container from ${spec.image}`, () =>
      this.docker.createContainer({
        Image: spec.image,
        ...(spec.name ? { name: spec.name } : {}),
        ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        Labels: spec.labels,
        ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
        Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        HostConfig: { Binds: binds },
      }),
    );
    try {
      await this.call(`start container ${container.id}`, () => container.start());
    } catch (err) {
      await this.removeContainer(container.id).catch(() => undefined); // the error above is the one to report
      throw err;
    }
    return container.id;
  }

  async copyIntoVolume(volume: string, hostDir: string): Promise<void> {
    const filler = await this.fillerImage();
    const helper = await this.call(`create copy helper for ${volume}`, () =>
      this.docker.createContainer({
        Image: filler,
        Cmd: ['/nonexistent'],
        Labels: { 'warmstart.helper': 'copy' },
        HostConfig: { Binds: [`${volume}:/target`] },
      }),
    );
    try {
      // node:child_process rather than execa: the volume fill is on a start's way to `up` (load-execa.ts).
      const tar = spawn('tar', ['--numeric-owner', '-C', hostDir, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      tar.stderr.setEncoding('utf8');
      tar.stderr.on('data', (chunk: string) => void (stderr = (stderr + chunk).slice(-4096)));
      const tarDone = new Promise<void>((resolve, reject) => {
        tar.on('error', reject);
        tar.on('close', (code, signal) =>
          code === 0 ? resolve() : reject(new Error(`tar of ${hostDir} failed (${signal ?? `exit code ${code}`}): ${stderr.trim().slice(-500)}`)),
        );
      });
      tarDone.catch(() => undefined); // observed below; a failed upload must not leave it unhandled
      try {
        await Promise.all([this.call(`copy into volume ${volume}`, () => helper.putArchive(tar.stdout, { path: '/target' })), tarDone]);
      } finally {
        if (tar.exitCode === null && tar.signalCode === null) tar.kill('SIGKILL');
      }
    } finally {
      await this.removeContainer(helper.id).catch(() => undefined); // a created, never-started helper holds nothing; the copy's outcome is the one to report
    }
  }

  /**
   * The image of the volume fill's helper container: empty (no files, no
   * command), made here from an empty tar the first time it is needed, so a
   * start depends on no image it would have to pull. Its container is created,
   * never started: the engine copies into its volume all the same.
   */
  private async fillerImage(): Promise<string> {
    // Asked each time (one inspect): something may have removed it since (an image prune, a node wipe).
    if ((await this.imageId(FILLER_IMAGE)) !== null) return FILLER_IMAGE;
    this.fillerImport ??= this.importFiller().finally(() => (this.fillerImport = undefined));
    await this.fillerImport;
    return FILLER_IMAGE;
  }

  private async importFiller(): Promise<void> {
    const emptyTar = Readable.from([Buffer.alloc(1024)]); // two zero blocks: a tar with nothing in it
    const { name, tag } = nameAndTag(FILLER_IMAGE);
    await this.call(`make ${FILLER_IMAGE}`, async () => {
      const progress = await this.docker.importImage(emptyTar, {
        repo: name,
        tag,
        changes: ['LABEL warmstart.managed=true warmstart.helper=volume-filler'],
      });
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve())),
      );
    });
  }

  async inspectContainer(idOrName: string): Promise<ContainerDetails | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.whenReachable(() => this.docker.getContainer(idOrName).inspect());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.failure(`inspect container ${idOrName}`, err);
    }
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      state: info.State.Status,
      running: info.State.Running === true,
      imageId: info.Image,
      labels: info.Config.Labels ?? {},
      env: info.Config.Env ?? [],
      mounts: (info.Mounts ?? []).map((m) => ({ type: m.Type, name: m.Name ?? '', source: m.Source, destination: m.Destination, rw: m.RW })),
      host: hostSettings(info.HostConfig as Record<string, unknown> | undefined),
      entrypoint: asArgv(info.Config.Entrypoint),
      cmd: asArgv(info.Config.Cmd),
    };
  }

  async findContainersWithLabel(key: string): Promise<ContainerSummary[]> {
    const list = await this.call('list containers', () => this.docker.listContainers({ all: true, filters: { label: [key] } }));
    return list.map((c) => ({ id: c.Id, image: c.Image, state: c.State, labels: c.Labels ?? {}, createdAt: c.Created * 1000 }));
  }

  async containerChanges(id: string): Promise<ContainerChange[]> {
    let raw: unknown;
    try {
      raw = await this.whenReachable(() => this.docker.getContainer(id).changes());
    } catch (err) {
      throw this.containerFailure(`list changes of container ${id}`, id, err);
    }
    // The engine answers `null` (no changes), which dockerode hands over unparsed.
    const parsed: unknown = Buffer.isBuffer(raw) || typeof raw === 'string' ? JSON.parse(raw.toString()) : raw;
    if (!Array.isArray(parsed)) return [];
    return (parsed as { Path: string; Kind: number }[]).map((c) => ({ path: c.Path, kind: CHANGE_KINDS[c.Kind] ?? 'modified' }));
  }

  async execInContainer(id: string, argv: string[], options: { input?: string } = {}): Promise<ExecOutput> {
    const container = this.docker.getContainer(id);
    const withInput = options.input !== undefined;
    let exec: Docker.Exec;
    try {
      exec = await container.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true, AttachStdin: withInput, Tty: false });
    } catch (err) {
      throw this.containerFailure(`exec in container ${id}`, id, err);
    }
    const stream = await this.call(`start exec in container ${id}`, () => exec.start({ hijack: true, stdin: withInput }));
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (b: Buffer) => stdout.push(b));
    err.on('data', (b: Buffer) => stderr.push(b));
    const done = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    this.docker.modem.demuxStream(stream, out, err);
    // Half-closes the connection: the engine closes the process's stdin.
    if (options.input !== undefined) (stream as NodeJS.WritableStream).end(options.input);
    await this.call(`exec in container ${id}`, () => done);
    // The stream can end a moment before the engine records the exit code.
    for (let i = 0; ; i++) {
      const info = await this.call(`inspect exec in container ${id}`, () => exec.inspect());
      if (!info.Running || i >= 200) {
        return {
          exitCode: info.ExitCode ?? -1,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async commitContainer(id: string, spec: CommitSpec): Promise<string> {
    const query: Record<string, unknown> = { container: id, pause: true };
    if (spec.ref !== null) Object.assign(query, { repo: nameAndTag(spec.ref).name, tag: nameAndTag(spec.ref).tag });
    const body: Record<string, unknown> = { Labels: spec.labels };
    if (spec.env) body.Env = spec.env;
    if (spec.entrypoint !== undefined && spec.entrypoint !== null) body.Entrypoint = spec.entrypoint;
    if (spec.cmd !== undefined && spec.cmd !== null) body.Cmd = spec.cmd;
    try {
      const res = (await this.docker.getContainer(id).commit({ _query: query, _body: body })) as { Id?: string; id?: string };
      const imageId = res.Id ?? res.id;
      if (!imageId) throw new Error('the engine returned no image id');
      return imageId;
    } catch (err) {
      throw this.containerFailure(`commit container ${id}`, id, err);
    }
  }

  async archiveOf(containerId: string, path: string): Promise<NodeJS.ReadableStream> {
    try {
      return await this.docker.getContainer(containerId).getArchive({ path });
    } catch (err) {
      throw this.containerFailure(`read ${path} of container ${containerId}`, containerId, err);
    }
  }

  async commitWithArchive(
    imageId: string,
    archive: NodeJS.ReadableStream,
    destDir: string,
    spec: CommitSpec,
    beforeCommit?: () => Promise<void>,
  ): Promise<string> {
    // No labels of its own: they would be committed into the image. Never started, so its command does not matter.
    const helper = await this.call(`create a container of ${imageId}`, () => this.docker.createContainer({ Image: imageId }));
    try {
      try {
        await helper.putArchive(archive, { path: destDir }); // not retried: the stream is read once
      } catch (err) {
        throw this.failure(`copy into ${destDir} of container ${helper.id}`, err);
      }
      await beforeCommit?.();
      return await this.commitContainer(helper.id, spec);
    } finally {
      await this.removeContainer(helper.id).catch(() => undefined); // a created container holds nothing; reconcile does not look for it
    }
  }

  async inspectImage(ref: string): Promise<ImageDetails | null> {
    let info: Docker.ImageInspectInfo;
    try {
      info = await this.whenReachable(() => this.docker.getImage(ref).inspect());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.failure(`inspect image ${ref}`, err);
    }
    return {
      id: info.Id,
      repoTags: info.RepoTags ?? [],
      repoDigests: info.RepoDigests ?? [],
      labels: info.Config?.Labels ?? {},
      os: info.Os,
      env: info.Config?.Env ?? [],
      entrypoint: asArgv(info.Config?.Entrypoint),
      cmd: asArgv(info.Config?.Cmd),
      createdAt: isoTime(info.Created),
    };
  }

  async listImagesWithLabels(labels: Record<string, string>): Promise<ImageSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const list = await this.call('list images', () => this.docker.listImages({ filters: { label } }));
    return list.map((i) => ({
      id: i.Id,
      repoTags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
      labels: i.Labels ?? {},
      createdAt: isoTime(i.Created),
    }));
  }

  /** A failure of a call on one container: 404 → MACHINE_NOT_FOUND, 409 → BACKEND_PRECONDITION (not running). */
  private containerFailure(what: string, id: string, err: unknown): WarmstartError {
    if (statusOf(err) === 404) {
      return new WarmstartError('MACHINE_NOT_FOUND', `no container ${id} on this engine`, { cause: err, detail: describeError(err) });
    }
    if (statusOf(err) === 409) {
      return new WarmstartError('BACKEND_PRECONDITION', `container ${id} is not running`, { cause: err, detail: describeError(err) });
    }
    return this.failure(what, err);
  }

  /** Runs a pull/push and waits for its progress stream, turning stream errors into codes. */
  private async followStream(start: () => Promise<NodeJS.ReadableStream>, during: 'pull' | 'push', signal?: AbortSignal): Promise<ProgressEvent[]> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await start();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw classifyRegistryMessage(describeError(err), during);
    }
    return new Promise<ProgressEvent[]>((resolve, reject) => {
      const onAbort = (): void => {
        (stream as unknown as { destroy?: (e?: Error) => void }).destroy?.();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.docker.modem.followProgress(stream, (err: Error | null, events: ProgressEvent[]) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) return reject(signal.reason);
        const failed = events?.find((e) => e.error || e.errorDetail?.message);
        const message = err?.message ?? failed?.error ?? failed?.errorDetail?.message;
        if (message) reject(classifyRegistryMessage(message, during));
        else resolve(events ?? []);
      });
    });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.whenReachable(fn);
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  /** Runs `fn`; while the engine cannot be reached, tries again until engineWaitMs is spent. */
  private async whenReachable<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.engineWaitMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (!unreachable(err) || Date.now() + this.retryEveryMs > deadline) throw err;
        await new Promise((r) => setTimeout(r, this.retryEveryMs));
      }
    }
  }

  private failure(what: string, err: unknown): WarmstartError {
    const code = (err as { code?: string })?.code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES') {
      return new WarmstartError('DOCKER_UNAVAILABLE', 'the Docker engine does not answer', {
        cause: err,
        detail: describeError(err),
      });
    }
    return new WarmstartError('DOCKER_OPERATION_FAILED', `docker: ${what} failed`, {
      cause: err,
      detail: describeError(err),
    });
  }
}

/** Entrypoint/Cmd as the engine reports them (null, a string or an array) as argv or null. */
function asArgv(value: string | string[] | null | undefined): string[] | null {
  if (value === null || value === undefined) return null;
  return Array.isArray(value) ? value : [value];
}

/** The HostConfig fields that reach the node, read defensively: the engine omits empty ones. */
function hostSettings(h: Record<string, unknown> | undefined): ContainerHostSettings {
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const devices = Array.isArray(h?.Devices) ? (h.Devices as Array<{ PathOnHost?: unknown }>).map((d) => str(d?.PathOnHost)) : [];
  return {
    privileged: h?.Privileged === true,
    networkMode: str(h?.NetworkMode),
    pidMode: str(h?.PidMode),
    ipcMode: str(h?.IpcMode),
    utsMode: str(h?.UTSMode),
    usernsMode: str(h?.UsernsMode),
    cgroupnsMode: str(h?.CgroupnsMode),
    capAdd: strs(h?.CapAdd),
    securityOpt: strs(h?.SecurityOpt),
    // --gpus arrives as a device request, not a device.
    devices: [...devices, ...(Array.isArray(h?.DeviceRequests) && h.DeviceRequests.length > 0 ? ['(device request)'] : [])],
  };
}
