/**
 * One interface over the machine backends: capture a provisioned machine as
 * an image, launch machines from images, and (where the backend has them)
 * VM state snapshots. One implementation per file in this folder. An
 * operation a backend lacks throws BACKEND_UNSUPPORTED; it is never a no-op.
 */
export type BackendName = 'docker' | 'incus' | 'lima' | 'cloud-hypervisor';

export interface MachineImage {
  /** the name machines launch from (a Docker ref, an Incus alias, a Lima template, a CH snapshot dir) */
  name: string;
  /** backend-specific properties/labels kept with the image */
  properties: Record<string, string>;
  createdAt: string | null;
}

export type MachineState = 'running' | 'stopped' | 'paused' | 'unknown';

export interface Machine {
  name: string;
  state: MachineState;
}

export interface StateSnapshot {
  machine: string;
  name: string;
  createdAt: string | null;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A file a launch writes into the new machine before it first starts (see `launch`). */
export interface LaunchFile {
  /** absolute path in the machine */
  path: string;
  content: string;
}

export interface SnapshotBackend {
  readonly name: BackendName;
  /**
   * Starts a new machine from an image (created and running on return).
   * `files` are written before the machine first starts where the image was
   * captured with a launch template for their path (`addLaunchTemplate`);
   * `filesWritten` names those written. Backends without templates write none.
   */
  launch(image: string, machine: string, options?: { files?: LaunchFile[] }): Promise<Machine & { filesWritten?: string[] }>;
  /**
   * Makes images captured from `machine` from now on write `path` at each
   * launch, from the launch's `files` (Incus/LXD: an image template rendered
   * when an instance is created; the content travels in the instance's
   * config). Nothing is written into the running machine.
   */
  addLaunchTemplate?(machine: string, path: string): Promise<void>;
  /** Runs a command inside a running machine (provisioning, post-launch hooks). */
  exec(machine: string, argv: string[], options?: { input?: string }): Promise<ExecResult>;
  /** Captures a machine's disk as a new image named `image`; the machine keeps running afterwards where the backend allows it. */
  captureImage(machine: string, image: string, properties?: Record<string, string>): Promise<MachineImage>;
  imageExists(image: string): Promise<boolean>;
  /** The image with its properties, or null when there is none (backends that can look one image up without listing them all). */
  imageInfo?(image: string): Promise<MachineImage | null>;
  /**
   * Writes a file into a running machine, creating its parent directories,
   * without running anything in it (backends with a file API). Root's, with `mode`.
   */
  writeFile?(machine: string, path: string, content: Buffer, mode: number): Promise<void>;
  listImages(prefix?: string): Promise<MachineImage[]>;
  removeImage(image: string): Promise<void>;
  listMachines(): Promise<Machine[]>;
  removeMachine(machine: string): Promise<void>;
  /** VM/instance state snapshot (BACKEND_UNSUPPORTED where there is none). */
  snapshot(machine: string, name: string): Promise<StateSnapshot>;
  restore(machine: string, name: string): Promise<void>;
  listSnapshots(machine: string): Promise<StateSnapshot[]>;
  deleteSnapshot(machine: string, name: string): Promise<void>;
}
