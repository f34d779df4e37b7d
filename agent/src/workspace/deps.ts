/**
 * What the pipeline talks to, wired once in createAgent (agent/src/agent.ts).
 * Its own module, so the pipeline's parts (job.ts, exact.ts, prebuild.ts)
 * import it without importing the pipeline itself.
 */
import type { PushQueue } from '../cache/push-queue.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { DevcontainerCli } from '../devcontainer/cli.js';
import type { DockerEngine } from '../docker/engine.js';
import type { GitClient } from '../git/git.js';
import type { CredentialSource } from '../registry/credentials.js';
import type { OciApi } from '../registry/oci-api.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { RegistryTransports } from '../registry/registry-transports.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import type { Mutex } from './mutex.js';

export interface PipelineDeps {
  config: AgentConfig;
  engine: DockerEngine;
  devcontainer: DevcontainerCli;
  git: GitClient;
  registry: RegistryClient;
  /** manifests and blobs (label reads, signatures) over the same routes as `registry`; absent: a default client */
  oci?: OciApi;
  /** how `registry` and `oci` reach each registry (agent/src/registry/registry-transports.ts); `warmstart doctor` reports it */
  registryTransports?: RegistryTransports;
  credentialSources: CredentialSource[];
  /** clone tokens of the configured GitHub App, for repositories on `hosts` (agent.ts); absent or null without an App */
  githubAppClone?: { hosts: readonly string[]; token(repository: { owner: string; name: string }, signal?: AbortSignal): Promise<string> } | null;
  store: WorkspaceStore;
  pushQueue: PushQueue;
  /**
   * Builds with features take turns on this node: the devcontainers CLI tags
   * every feature build's content image `dev_container_feature_content_temp`
   * and reads it back by that name minutes later, so two at once can build
   * each other's features.
   */
  featureBuilds: Mutex;
}
