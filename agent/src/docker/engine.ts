/**
 * What the agent needs from a container engine, in its own words. The
 * pipeline only talks to this interface; `DockerodeEngine` is the one
 * implementation, over the Docker Engine API.
 */
import type { EngineRegistryConfig } from '../registry/insecure-registries.js';

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
  /** ms since the epoch, where the engine says */
  createdAt?: number;
}

export interface RunSpec {
  image: string;
  /** argv of the main process; the image's default when absent */
  cmd?: string[];
  labels: Record<string, string>;
  /** named volume → mount target */
  volumes?: Record<string, string>;
  /** host directory → mount target, read-only */
  readOnlyBinds?: Record<string, string>;
  workingDir?: string;
  env?: Record<string, string>;
  /** container name; the engine picks one when absent */
  name?: string;
  /** replaces the image's entrypoint (with `cmd` as its arguments) */
  entrypoint?: string[];
}

/** One mount of a container, as the engine reports it. */
export interface ContainerMount {
  type: string;
  /** a volume's name ('' for other mounts) */
  name?: string;
  source: string;
  destination: string;
  rw: boolean;
}

/** What golden images and the docker backend need to know about one container. */
export interface ContainerDetails {
  id: string;
  /** without the leading `/` */
  name: string;
  /** created, running, paused, restarting, removing, exited, dead */
  state: string;
  running: boolean;
  /** image id (sha256:...) the container was created from */
  imageId: string;
  labels: Record<string, string>;
  /** `KEY=value` entries */
  env: string[];
  mounts: ContainerMount[];
  /** What of the node the container was given (HostConfig); absent from engines that do not say. */
  host?: ContainerHostSettings;
  entrypoint: string[] | null;
  cmd: string[] | null;
}

/** The parts of a container's HostConfig that reach the node (workspace/started-container-check.ts). */
export interface ContainerHostSettings {
  privileged: boolean;
  /** e.g. `host`, `container:<id>`, `private`, '' for the default */
  networkMode: string;
  pidMode: string;
  ipcMode: string;
  utsMode: string;
  usernsMode: string;
  cgroupnsMode: string;
  capAdd: string[];
  securityOpt: string[];
  /** host paths of the devices given to the container */
  devices: string[];
}

/** One path of a container's own (writable) layer, as `docker diff` lists it. */
export interface ContainerChange {
  path: string;
  kind: 'modified' | 'added' | 'deleted';
}

export interface ImageDetails {
  id: string;
  repoTags: string[];
  /** registry digests (`repo@sha256:...`) the image is known by */
  repoDigests: string[];
  labels: Record<string, string>;
  /** e.g. `linux` */
  os: string;
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  createdAt: string | null;
}

export interface ImageSummary {
  id: string;
  repoTags: string[];
  labels: Record<string, string>;
  createdAt: string | null;
}

/**
 * A commit of a container. Docker merges the container's own config into
 * what is given here: a label or env key given here wins, keys not given
 * are kept from the container (so a key is dropped by giving it a neutral value).
 */
export interface CommitSpec {
  /** `repo[:tag]` the new image is tagged with; null leaves it untagged (a step towards another image) */
  ref: string | null;
  labels: Record<string, string>;
  /** `KEY=value` entries that replace the container's for the same keys */
  env?: string[];
  /** the image's entrypoint; `[]` means none (null: keep the container's) */
  entrypoint?: string[] | null;
  cmd?: string[] | null;
}

export interface ExecOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface DockerEngine {
  /** Engine version; throws DOCKER_UNAVAILABLE when the engine does not answer. */
  version(): Promise<string>;
  /**
   * Resolves once the engine answers, waiting a bounded time for one that is
   * restarting; throws DOCKER_UNAVAILABLE when it stays away. For callers that
   * hand the engine to another program (the devcontainers CLI) that would not wait.
   */
  waitForEngine?(): Promise<void>;
  /** The engine's version and the API version it speaks; throws DOCKER_UNAVAILABLE when it does not answer. */
  versions?(): Promise<{ version: string; apiVersion: string }>;
  /**
   * Which registries the engine treats as insecure (`GET /info`
   * RegistryConfig), for the agent's own registry calls
   * (agent/src/registry/registry-transports.ts). Does not wait for an engine
   * that is away: throws DOCKER_UNAVAILABLE at once.
   */
  registryConfig?(): Promise<EngineRegistryConfig>;
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
  /**
   * Makes an image that is `imageId` plus `labels`, tagged `ref`, and returns
   * its id. Adds no filesystem layer and does not touch any container.
   */
  labelImage(imageId: string, labels: Record<string, string>, ref: string): Promise<string>;
  /** Pushes ref; resolves only when the engine says the push is complete, with the manifest digest it reported (null if none). */
  pushImage(ref: string, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<string | null>;
  removeImage(ref: string): Promise<void>;
  /** Image id the container was created from. */
  containerImageId(containerId: string): Promise<string>;
  findContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  removeContainer(id: string): Promise<void>;
  /** Creates and starts a long-running container; returns its id. */
  runContainer(spec: RunSpec): Promise<string>;
  /**
   * Copies a host directory's contents into the root of a volume, through a
   * container that is created but never started, of an empty image the
   * engine adapter makes itself (no image to pull).
   */
  copyIntoVolume(volume: string, hostDir: string): Promise<void>;

  // ---- machines and golden images (docker backend, agent/src/images)
  /** The container's details, or null when there is no such container. */
  inspectContainer(idOrName: string): Promise<ContainerDetails | null>;
  /** Containers carrying label `key` with any value. */
  findContainersWithLabel(key: string): Promise<ContainerSummary[]>;
  /** Paths of the container's writable layer (what a commit would hold); MACHINE_NOT_FOUND when there is no such container. */
  containerChanges(id: string): Promise<ContainerChange[]>;
  /**
   * Runs argv in a running container (Engine API exec), stdout and stderr
   * demultiplexed; `input` is written to its stdin, then stdin is closed.
   * MACHINE_NOT_FOUND when there is no such container, BACKEND_PRECONDITION
   * when it is not running.
   */
  execInContainer(id: string, argv: string[], options?: { input?: string }): Promise<ExecOutput>;
  /** Commits the container as a new image (paused during the commit); returns the image id. MACHINE_NOT_FOUND when there is no such container. */
  commitContainer(id: string, spec: CommitSpec): Promise<string>;
  /**
   * A tar of `path` in the container (Engine API archive; reads through its
   * mounts, volumes included). Its entries start with the path's last name.
   */
  archiveOf(containerId: string, path: string): Promise<NodeJS.ReadableStream>;
  /**
   * Unpacks `archive` at `destDir` into a container of `imageId` that is
   * created but never started, and commits it per `spec`: the image plus one
   * layer. `beforeCommit` runs once the archive is in; when it throws,
   * nothing is committed. The container goes in every case.
   */
  commitWithArchive(
    imageId: string,
    archive: NodeJS.ReadableStream,
    destDir: string,
    spec: CommitSpec,
    beforeCommit?: () => Promise<void>,
  ): Promise<string>;
  /** The image's details, or null when it is not on this engine. */
  inspectImage(ref: string): Promise<ImageDetails | null>;
  /** Local images carrying every `key=value` label given. */
  listImagesWithLabels(labels: Record<string, string>): Promise<ImageSummary[]>;
}
