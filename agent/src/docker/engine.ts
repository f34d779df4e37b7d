/**
 * What the agent needs from a container engine, in its own words. The
 * pipeline only talks to this interface; `DockerodeEngine` is the one
 * implementation, over the Docker Engine API.
 */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

export interface ContainerSummary {
  id: string;
  image: string;
  state: string;
  labels: Record<string, string>;
}

export interface RunSpec {
  image: string;
  /** argv of the main process; the image's default when absent */
  cmd?: string[];
  labels: Record<string, string>;
  /** named volume → mount target */
  volumes?: Record<string, string>;
  workingDir?: string;
  env?: Record<string, string>;
}

export interface DockerEngine {
  /** Engine version; throws DOCKER_UNAVAILABLE when the engine does not answer. */
  version(): Promise<string>;
  volumeExists(name: string): Promise<boolean>;
  createVolume(name: string, labels: Record<string, string>): Promise<void>;
  removeVolume(name: string): Promise<void>;
  /** Local image id (sha256:...) or null when the image is not on this engine. */
  imageId(ref: string): Promise<string | null>;
  /** Registry digests (`repo@sha256:...`) the local image is known by; empty when it is not local. */
  imageRepoDigests(ref: string): Promise<string[]>;
  /** The engine's platform, e.g. `linux/amd64`: images built here run on it. */
  platform(): Promise<string>;
  /** Pulls ref; registry errors come back as REGISTRY_* WarmstartErrors. */
  pullImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<void>;
  tagImage(source: string, ref: string): Promise<void>;
  /** Pushes ref; resolves only when the engine says the push is complete. */
  pushImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<void>;
  removeImage(ref: string): Promise<void>;
  /** Image id the container was created from. */
  containerImageId(containerId: string): Promise<string>;
  findContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  removeContainer(id: string): Promise<void>;
  /** Creates and starts a long-running container; returns its id. */
  runContainer(spec: RunSpec): Promise<string>;
  /**
   * Copies a host directory's contents into the root of a volume, through a
   * container of `helperImage` that is created but never started.
   */
  copyIntoVolume(volume: string, hostDir: string, helperImage: string): Promise<void>;
}
