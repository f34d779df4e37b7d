/**
 * The devcontainers CLI as the pipeline sees it: one `up` per start.
 * `DevcontainerCliRunner` is the implementation over the pinned npm package.
 */
export interface UpOptions {
  /** Host folder holding the repository (the CLI reads the config and build context here). */
  workspaceFolder: string;
  /** The discovered config file; passed so relative paths resolve against it. */
  configPath?: string;
  /** Our full replacement config (the repo's config plus our changes). */
  overrideConfigPath: string;
  /** Labels that identify the container; also how an existing one is found again. */
  idLabels: Record<string, string>;
  /** Extra environment for the CLI and the docker CLI it runs (e.g. DOCKER_CONFIG). */
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called with the CLI's pid (also its process group) once it runs. */
  onStart?: (pid: number) => void;
  /** Every line the CLI writes to its log, raw (`--log-format json` records), as it comes. */
  onLog?: (line: string) => void;
}

export interface UpResult {
  containerId: string;
  remoteUser?: string;
  remoteWorkspaceFolder?: string;
}

export interface DevcontainerCli {
  /** Builds (if needed) and starts the dev container; throws DEVCONTAINER_* errors. */
  up(options: UpOptions): Promise<UpResult>;
  version(): Promise<string>;
  /**
   * True when builds go to the classic builder (no buildx plugin), which the
   * CLI decides the same way. Asked once per process.
   */
  usesClassicBuilder(): Promise<boolean>;
}
