import { join } from 'node:path';
import { configFromEnv, type AgentConfig } from './config/agent-config.js';
import { PushQueue } from './cache/push-queue.js';
import { DevcontainerCliRunner } from './devcontainer/cli-runner.js';
import type { DevcontainerCli } from './devcontainer/cli.js';
import { lazyEngine } from './docker/lazy-engine.js';
import type { DockerEngine } from './docker/engine.js';
import type { GithubApp } from './registry/github-app.js';
import { GitCli } from './git/git-cli.js';
import type { GitClient } from './git/git.js';
import { staticCredentials, type CredentialSource } from './registry/credentials.js';
import { createOciApi, type OciApi } from './registry/oci-api.js';
import { createRegistryClient, type RegistryClient } from './registry/registry-client.js';
import { RegistryTransports } from './registry/registry-transports.js';
import { WorkspaceStore } from './state/workspace-store.js';
import type { PipelineDeps } from './workspace/deps.js';
import { Mutex } from './workspace/mutex.js';

/** Every dependency is optional: createAgent fills in the real one. */
export interface AgentOptions {
  config?: AgentConfig;
  env?: NodeJS.ProcessEnv;
  engine?: DockerEngine;
  devcontainer?: DevcontainerCli;
  git?: GitClient;
  registry?: RegistryClient;
  oci?: OciApi;
  /** how the agent's registry calls reach each registry; default: from the engine's settings and config.dockerCertsDir */
  registryTransports?: RegistryTransports;
  credentialSources?: CredentialSource[];
  store?: WorkspaceStore;
  pushQueue?: PushQueue;
}

/** The wired agent: what the pipeline, the daemon and the commands need. */
export type Agent = PipelineDeps;

/** The configured GitHub App, its key read and checked; null without one. */
export async function githubAppFromConfig(config: AgentConfig): Promise<GithubApp | null> {
  if (!config.githubApp) return null;
  // Octokit is loaded only where a GitHub App is configured.
  const { githubApp, loadPrivateKey } = await import('./registry/github-app.js');
  return githubApp({
    appId: config.githubApp.appId,
    installationId: config.githubApp.installationId,
    privateKey: await loadPrivateKey(config.githubApp.privateKeyFile),
    ...(config.githubApp.apiUrl ? { baseUrl: config.githubApp.apiUrl } : {}),
    registryScope: config.githubApp.registryScope,
  });
}

/** The agent's static credential sources, in the order of docs/how-it-works.md "Registry credentials" after the job's own. */
export async function credentialSourcesFromConfig(config: AgentConfig, app?: GithubApp | null): Promise<CredentialSource[]> {
  const sources: CredentialSource[] = [];
  const theApp = app === undefined ? await githubAppFromConfig(config) : app;
  if (theApp) sources.push(theApp.registry);
  if (config.registryUsername && config.registryPassword) {
    // Bound to the configured hosts: a job naming another registry gets nothing from the node.
    sources.push(
      staticCredentials({ registry: config.registryCredentialHosts, username: config.registryUsername, password: config.registryPassword }, 'static'),
    );
  }
  return sources;
}

/** The registry routes of an agent: the engine's insecure registries (asked once per 30 s), the configured certs.d. */
export function registryTransportsFor(engine: DockerEngine, config: AgentConfig): RegistryTransports {
  const certsDir = config.dockerCertsDir;
  return new RegistryTransports({
    ...(engine.registryConfig ? { engineConfig: () => engine.registryConfig!() } : {}),
    ...(certsDir ? { certsDir } : {}),
  });
}

/** Wires the agent in one place. */
export async function createAgent(options: AgentOptions = {}): Promise<Agent> {
  const config = options.config ?? configFromEnv(options.env);
  const app = options.credentialSources ? null : await githubAppFromConfig(config);
  const engine = options.engine ?? lazyEngine();
  const registryTransports = options.registryTransports ?? registryTransportsFor(engine, config);
  const deps: PipelineDeps = {
    config,
    engine,
    devcontainer:
      options.devcontainer ??
      new DevcontainerCliRunner({
        script: config.devcontainerCli,
        cliPluginDirs: config.dockerCliPluginDirs ?? [],
        // Per boot: the runtime dir is a tmpfs under systemd (RuntimeDirectory=).
        probeCacheFile: join(config.runtimeDir, 'builder-probe.json'),
      }),
    git: options.git ?? new GitCli(),
    registry: options.registry ?? createRegistryClient({ transports: registryTransports }),
    oci: options.oci ?? createOciApi({ transports: registryTransports }),
    registryTransports,
    credentialSources: options.credentialSources ?? (await credentialSourcesFromConfig(config, app)),
    githubAppClone:
      app && config.githubApp ? { hosts: config.githubApp.gitHosts, token: (repository, signal) => app.cloneToken(repository, signal) } : null,
    store: options.store ?? new WorkspaceStore(config.stateDir),
    pushQueue: options.pushQueue ?? new PushQueue(),
    featureBuilds: new Mutex(),
  };
  return deps;
}
