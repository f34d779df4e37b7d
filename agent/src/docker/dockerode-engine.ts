import Docker from 'dockerode';
import { execa } from 'execa';
import { WarmstartError, describeError } from '../errors.js';
import type { ContainerSummary, DockerEngine, RegistryAuth, RunSpec } from './engine.js';
import { classifyRegistryMessage } from './registry-errors.js';

interface ProgressEvent {
  error?: string;
  errorDetail?: { message?: string };
  status?: string;
}

/** Splits `host:port/path:tag` into the name and tag the push endpoint wants. */
function splitTag(ref: string): { name: string; tag: string } {
  const at = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  if (at > slash) return { name: ref.slice(0, at), tag: ref.slice(at + 1) };
  return { name: ref, tag: 'latest' };
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { statusCode?: number }).statusCode === 404;
}

/** DockerEngine over the Docker Engine API (dockerode). */
export class DockerodeEngine implements DockerEngine {
  constructor(private readonly docker: Docker = new Docker()) {}

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

  async volumeExists(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).inspect();
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
      await this.docker.getVolume(name).remove();
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove volume ${name}`, err);
    }
  }

  async imageId(ref: string): Promise<string | null> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return info.Id;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.failure(`inspect image ${ref}`, err);
    }
  }

  async imageRepoDigests(ref: string): Promise<string[]> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return info.RepoDigests ?? [];
    } catch (err) {
      if (isNotFound(err)) return [];
      throw this.failure(`inspect image ${ref}`, err);
    }
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
    const { name, tag } = splitTag(ref);
    await this.call(`tag ${ref}`, () => this.docker.getImage(source).tag({ repo: name, tag }));
  }

  async pushImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<void> {
    const { name, tag } = splitTag(ref);
    const opts: Record<string, unknown> = { tag };
    if (auth) opts.authconfig = auth;
    if (signal) opts.abortSignal = signal;
    await this.followStream(() => this.docker.getImage(name).push(opts), 'push', signal);
  }

  async removeImage(ref: string): Promise<void> {
    try {
      await this.docker.getImage(ref).remove({ force: true });
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove image ${ref}`, err);
    }
  }

  async containerImageId(containerId: string): Promise<string> {
    const info = await this.call(`inspect container ${containerId}`, () =>
      this.docker.getContainer(containerId).inspect(),
    );
    return info.Image;
  }

  async findContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const list = await this.call('list containers', () =>
      this.docker.listContainers({ all: true, filters: { label } }),
    );
    return list.map((c) => ({ id: c.Id, image: c.Image, state: c.State, labels: c.Labels ?? {} }));
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: false });
    } catch (err) {
      if (!isNotFound(err)) throw this.failure(`remove container ${id}`, err);
    }
  }

  async runContainer(spec: RunSpec): Promise<string> {
    const binds = Object.entries(spec.volumes ?? {}).map(([vol, target]) => `${vol}:${target}`);
    const container = await this.call(`create container from ${spec.image}`, () =>
      this.docker.createContainer({
        Image: spec.image,
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
      await this.removeContainer(container.id).catch(() => undefined);
      throw err;
    }
    return container.id;
  }

  async copyIntoVolume(volume: string, hostDir: string, helperImage: string): Promise<void> {
    const helper = await this.call(`create copy helper for ${volume}`, () =>
      this.docker.createContainer({
        Image: helperImage,
        Cmd: ['/nonexistent'],
        Labels: { 'warmstart.helper': 'copy' },
        HostConfig: { Binds: [`${volume}:/target`] },
      }),
    );
    try {
      const tar = execa('tar', ['--numeric-owner', '-C', hostDir, '-c', '.'], {
        buffer: false,
        stdout: 'pipe',
        stderr: 'pipe',
      });
      await Promise.all([
        this.call(`copy into volume ${volume}`, () => helper.putArchive(tar.stdout, { path: '/target' })),
        tar,
      ]);
    } finally {
      await this.removeContainer(helper.id).catch(() => undefined);
    }
  }

  /** Runs a pull/push and waits for its progress stream, turning stream errors into codes. */
  private async followStream(
    start: () => Promise<NodeJS.ReadableStream>,
    during: 'pull' | 'push',
    signal?: AbortSignal,
  ): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await start();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw classifyRegistryMessage(describeError(err), during);
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        (stream as unknown as { destroy?: (e?: Error) => void }).destroy?.();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, events: ProgressEvent[]) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) return reject(signal.reason);
          const failed = events?.find((e) => e.error || e.errorDetail?.message);
          const message = err?.message ?? failed?.error ?? failed?.errorDetail?.message;
          if (message) reject(classifyRegistryMessage(message, during));
          else resolve();
        },
      );
    });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(what, err);
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
