/** What a caller (CLI or control plane) asks for: prepare one workspace. */
export interface PrepareRequest {
  workspaceId: string;
  /** https/ssh URL, GitHub owner/repo, a local path or file:// URL */
  repository: string;
  configName?: string | null;
  lightweight?: boolean;
  /** token for cloning https repositories; never stored */
  gitToken?: string | null;
  cache?: {
    /** true: no pull, no cacheFrom, no push */
    disabled?: boolean;
    /** HOST[:PORT][/NAMESPACE]; the agent's configured registry when absent */
    registry?: string | null;
    /** an explicit moving ref, instead of the one derived from the repository */
    ref?: string | null;
    /** credentials supplied with the job: first in the credential order */
    username?: string | null;
    password?: string | null;
  };
  push?: { disabled?: boolean; timeoutMs?: number | null };
  /**
   * How far the caller's token reaches (docs/how-it-works.md "Trust model"): `node` (the
   * CLI's operator, the API's static token, a JWT without a workspace claim)
   * or `workspace` (a workspace-scoped JWT). A workspace-scoped caller may
   * not name a cache ref outside its repository's own path. Default `node`.
   */
  scope?: 'node' | 'workspace';
  /** who the workspace belongs to (the token's subject), recorded at creation; golden images take their owner from it */
  owner?: string | null;
  /** cwd for relative local repository paths (the CLI's) */
  cwd?: string;
}
