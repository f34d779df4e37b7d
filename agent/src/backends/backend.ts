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

export interface SnapshotBackend {
  readonly name: BackendName;
  /** Starts a new machine from an image (created and running on return). */
  launch(image: string, machine: string): Promise<Machine>;
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
