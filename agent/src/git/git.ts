/** What the pipeline needs from git. `GitCli` is the implementation. */
export interface CloneOptions {
  /** Token for https remotes; handed to git through a credential helper, never in the URL. */
  token?: string;
  /** Username that goes with the token (GitHub: `x-access-token`). */
  username?: string;
  /** Shallow clone depth; 0 for full history. Default 1. */
  depth?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface GitClient {
  /** Clones url into dest (which must not exist); throws GIT_CLONE_FAILED. */
  clone(url: string, dest: string, options?: CloneOptions): Promise<void>;
}
