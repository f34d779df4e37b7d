import { DockerodeEngine } from '../docker/dockerode-engine.js';
import type { ContainerSummary, DockerEngine, ImageDetails } from '../docker/engine.js';
import { WarmstartError } from '../errors.js';
import type { ExecResult, Machine, MachineImage, MachineState, SnapshotBackend, StateSnapshot } from './backend.js';

/** The label that makes a container a machine of this backend; its value is the machine's name. */
export const MACHINE_LABEL = 'warmstart.machine';
/** Every image this backend (or a golden image) makes carries it; listImages lists only those. */
export const MANAGED_LABEL = 'dev.warmstart.managed';

/** Keeps the container alive and exits promptly on `docker stop`, with any POSIX shell. */
const KEEP_ALIVE = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];
/** What Docker accepts as a container name. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

const unsupported = (what: string): WarmstartError =>
  new WarmstartError(
    'BACKEND_UNSUPPORTED',
    `the docker backend has no ${what}: Docker cannot save or restore a container's running state (memory, processes); ` +
      'capture its filesystem as an image instead (captureImage, a docker commit) and launch from that',
  );

function machineState(dockerState: string): MachineState {
  switch (dockerState) {
    case 'running':
      return 'running';
    case 'paused':
      return 'paused';
    case 'created':
    case 'exited':
    case 'dead':
      return 'stopped';
    default:
      return 'unknown';
  }
}

/** `name` for `name:latest`, the ref itself otherwise: the name a machine launches from. */
function launchName(repoTag: string): string {
  return repoTag.endsWith(':latest') ? repoTag.slice(0, -':latest'.length) : repoTag;
}

/**
 * The image defaults a commit should restore: Docker copies the container's
 * config (here: the keep-alive command the machine was started with) into
 * the new image, so a plain `docker run` of it would not do what the source
 * image does. `[]` clears an entrypoint the source did not have.
 */
export function sourceDefaults(source: ImageDetails | null): { entrypoint?: string[]; cmd?: string[] } {
  if (!source) return {};
  return { entrypoint: source.entrypoint ?? [], ...(source.cmd ? { cmd: source.cmd } : {}) };
}

/**
 * SnapshotBackend over the Docker Engine: a machine is a long-lived
 * container labelled `warmstart.machine=<name>` (and named `<name>`), an
 * image is a local Docker image (launch never pulls), capture is `docker
 * commit`. Docker has no VM state snapshots: those operations throw
 * BACKEND_UNSUPPORTED.
 */
export class DockerBackend implements SnapshotBackend {
  readonly name = 'docker' as const;

  constructor(private readonly engine: DockerEngine = new DockerodeEngine()) {}

  async launch(image: string, machine: string): Promise<Machine> {
    if (!CONTAINER_NAME.test(machine)) {
      throw new WarmstartError('INVALID_ARGUMENT', `machine name ${JSON.stringify(machine)} is not a valid Docker container name`);
    }
    if ((await this.engine.imageId(image)) === null) {
      throw new WarmstartError('IMAGE_NOT_FOUND', `no image ${image} on this engine`);
    }
    const exists = (): WarmstartError => new WarmstartError('BACKEND_PRECONDITION', `a container named ${machine} exists already`);
    if ((await this.find(machine)) !== null) throw exists();
    try {
      await this.engine.runContainer({
        image,
        name: machine,
        entrypoint: [KEEP_ALIVE[0]!],
        cmd: KEEP_ALIVE.slice(1),
        labels: { [MACHINE_LABEL]: machine },
      });
    } catch (err) {
      // 409 from the engine: the name is taken (by a container that is not a machine).
      if ((err as { cause?: { statusCode?: number } }).cause?.statusCode === 409) throw exists();
      throw err;
    }
    return { name: machine, state: 'running' };
  }

  async exec(machine: string, argv: string[], options: { input?: string } = {}): Promise<ExecResult> {
    const c = await this.require(machine);
    return this.engine.execInContainer(c.id, argv, options);
  }

  async captureImage(machine: string, image: string, properties: Record<string, string> = {}): Promise<MachineImage> {
    const c = await this.require(machine);
    const details = await this.engine.inspectContainer(c.id);
    const source = details ? await this.engine.inspectImage(details.imageId) : null;
    await this.engine.commitContainer(c.id, {
      ref: image,
      // An empty machine label: containers later run from the image are not taken for this machine.
      labels: { ...properties, [MANAGED_LABEL]: 'true', [MACHINE_LABEL]: '' },
      ...sourceDefaults(source),
    });
    const made = await this.engine.inspectImage(image);
    if (!made) throw new WarmstartError('BACKEND_ERROR', `the commit of ${machine} left no image ${image}`);
    return { name: image, properties: made.labels, createdAt: made.createdAt };
  }

  async imageExists(image: string): Promise<boolean> {
    return (await this.engine.imageId(image)) !== null;
  }

  async listImages(prefix = ''): Promise<MachineImage[]> {
    const images = await this.engine.listImagesWithLabels({ [MANAGED_LABEL]: 'true' });
    return images.flatMap((i) =>
      i.repoTags
        .map(launchName)
        .filter((name) => name.startsWith(prefix))
        .map((name) => ({ name, properties: i.labels, createdAt: i.createdAt })),
    );
  }

  async removeImage(image: string): Promise<void> {
    if ((await this.engine.imageId(image)) === null) {
      throw new WarmstartError('IMAGE_NOT_FOUND', `no image ${image} on this engine`);
    }
    await this.engine.removeImage(image);
  }

  async listMachines(): Promise<Machine[]> {
    const containers = await this.engine.findContainersWithLabel(MACHINE_LABEL);
    return containers
      .filter((c) => (c.labels[MACHINE_LABEL] ?? '') !== '')
      .map((c) => ({ name: c.labels[MACHINE_LABEL]!, state: machineState(c.state) }));
  }

  async removeMachine(machine: string): Promise<void> {
    const c = await this.require(machine);
    await this.engine.removeContainer(c.id);
  }

  async snapshot(_machine: string, _name: string): Promise<StateSnapshot> {
    throw unsupported('state snapshots');
  }

  async restore(_machine: string, _name: string): Promise<void> {
    throw unsupported('snapshot restore');
  }

  async listSnapshots(_machine: string): Promise<StateSnapshot[]> {
    throw unsupported('state snapshots to list');
  }

  async deleteSnapshot(_machine: string, _name: string): Promise<void> {
    throw unsupported('state snapshots to delete');
  }

  private async find(machine: string): Promise<ContainerSummary | null> {
    const found = await this.engine.findContainers({ [MACHINE_LABEL]: machine });
    return found[0] ?? null;
  }

  private async require(machine: string): Promise<ContainerSummary> {
    const c = await this.find(machine);
    if (!c) throw new WarmstartError('MACHINE_NOT_FOUND', `no docker machine ${machine} on this engine`);
    return c;
  }
}
