/** What the pipeline needs from git. `GitCli` is the implementation. */
export interface CloneOptions {
  /** Token for https remotes; handed to git through a credential helper, never in the URL. */
  token?: string;
  /**
   * host[:port] the token is for: git's credential helper answers only when
   * git asks for this host (a redirect or submodule elsewhere gets nothing).
   * Without it the token is never handed out.
   */
  tokenHost?: string | null;
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
