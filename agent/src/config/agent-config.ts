import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parseMaxAge } from '../cache/exact-max-age.js';
import { pinnedCliScript } from '../devcontainer/cli-runner.js';
import { WarmstartError } from '../errors.js';
import { signingConfigFromEnv, type SigningConfig } from './signing-config.js';
import { DEFAULT_CERTS_DIR } from '../registry/certs-dir.js';
import { normalizeRegistryHost } from '../registry/credentials.js';
import { secretSetting } from './secret-setting.js';

/** The agent's settings, from the environment (the CLI's flags win over these). */
export interface AgentConfig {
  /** durable state: workspace records, event logs, host clones */
  stateDir: string;
  /** runtime secrets (the in-container git credential); a tmpfs under systemd */
  runtimeDir: string;
  /** image for lightweight workspaces, repos without a config, and the recovery fallback */
  defaultImage: string;
  /** HOST[:PORT][/NAMESPACE] of the cache registry; null: cache disabled unless a job names one */
  cacheRegistry: string | null;
  /** static registry credentials (third in the credential order) */
  registryUsername: string | null;
  registryPassword: string | null;
  /**
   * A GitHub App: ghcr.io credentials (`packages: write`) and clone tokens
   * (`contents: read`, one repository) for repositories on `gitHosts`
   * (WARMSTART_GITHUB_APP_GIT_HOSTS, default github.com); `apiUrl` for GitHub
   * Enterprise Server (WARMSTART_GITHUB_API_URL, default https://api.github.com).
   */
  githubApp: {
    appId: string;
    privateKeyFile: string;
    installationId: string;
    apiUrl: string | null;
    gitHosts: string[];
    /** WARMSTART_GITHUB_APP_REGISTRY_SCOPE: the registry token per job repository (default) or installation-wide */
    registryScope: 'repository' | 'installation';
  } | null;
  /** git token for https clones when a job brings none */
  gitToken: string | null;
  buildTimeoutMs: number;
  pushTimeoutMs: number;
  /** entry script of the devcontainers CLI, run with the agent's node; the pinned one from node_modules by default */
  devcontainerCli: string;
  /**
   * Whether a repository's `initializeCommand` may run. The devcontainers CLI
   * runs it on this node, as the agent's user (root under systemd), beside
   * every other job's credentials: off unless the operator trusts every
   * repository the node is asked to prepare.
   */
  allowInitializeCommand: boolean;
  /**
   * Registry hosts (host[:port], lowercased) the static registry credentials
   * belong to: `WARMSTART_REGISTRY_CREDENTIAL_HOSTS`, else the configured cache
   * registry's host. A job that names any other registry never gets them.
   */
  registryCredentialHosts: string[];
  /** git hosts the node's git token belongs to: `WARMSTART_GIT_TOKEN_HOSTS`, default github.com */
  gitTokenHosts: string[];
  /**
   * What a repository's config may reach on the node (`WARMSTART_HOST_ACCESS`):
   * `deny` (default) refuses privileged containers, host binds, host
   * namespaces, devices, extra capabilities and unsafe build options.
   */
  hostAccess: 'deny' | 'allow';
  /**
   * `WARMSTART_ALL_REPOSITORIES_TRUSTED=1`: every repository this node builds
   * is trusted (a team's own fleet), so with host access allowed the node's
   * own registry credentials may still push.
   */
  allRepositoriesTrusted: boolean;
  /** `WARMSTART_EXACT_MAX_AGE` (default 7 days): an older exact image is not started (agent/src/cache/exact-max-age.ts). */
  exactMaxAgeMs: number;
  /** cache signing and trust (signing-config.ts); absent: neither */
  cacheSigningKey?: SigningConfig['cacheSigningKey'];
  cacheTrustedKeys?: SigningConfig['cacheTrustedKeys'];
  /**
   * `WARMSTART_DOCKER_CLI_PLUGIN_DIRS` (absolute dirs, ':'-separated): written
   * into each job's DOCKER_CONFIG as `cliPluginsExtraDirs`, so the docker CLI the
   * devcontainers CLI runs finds plugins (docker-buildx) kept out of the system
   * plugin dirs. Absent or empty: none.
   */
  dockerCliPluginDirs?: string[];
  /**
   * `WARMSTART_CACHE_PULL_FIRST`: `auto` (default) waits for the moving
   * image's pull before a build only under the classic builder, which uses
   * local images alone; BuildKit reads the cache from the registry itself and
   * takes the layers it needs (docs/how-it-works.md "Two builders"). `always` waits under
   * both.
   */
  cachePullFirst?: 'auto' | 'always';
  /**
   * `WARMSTART_DOCKER_CERTS_DIR` (absolute; default /etc/docker/certs.d): the
   * per-registry certificates dockerd reads, read by the agent's own registry
   * calls too (agent/src/registry/certs-dir.ts).
   */
  dockerCertsDir?: string;
}

export const DEFAULT_IMAGE = 'mcr.microsoft.com/devcontainers/base:bookworm';

function seconds(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback * 1000;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new WarmstartError('INVALID_ARGUMENT', `${key} must be a positive number of seconds`);
  }
  return Math.round(n * 1000);
}

const nonEmpty = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

/** WARMSTART_DEVCONTAINER_CLI must name an existing file by its absolute path: checked here, at start-up, not at the first build. */
function devcontainerCli(env: NodeJS.ProcessEnv): string {
  const path = nonEmpty(env.WARMSTART_DEVCONTAINER_CLI);
  if (path === null) return pinnedCliScript();
  let isFile = false;
  try {
    isFile = isAbsolute(path) && statSync(path).isFile();
  } catch {
    // missing: refused below
  }
  if (!isFile) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      'WARMSTART_DEVCONTAINER_CLI must be the absolute path of the devcontainers CLI entry script (devcontainer.js)',
      { detail: `not an existing file: ${path}` },
    );
  }
  return path;
}

/** WARMSTART_DOCKER_CLI_PLUGIN_DIRS: absolute paths separated by ':'; empty entries ignored. */
function dockerCliPluginDirs(env: NodeJS.ProcessEnv): string[] {
  const dirs = (nonEmpty(env.WARMSTART_DOCKER_CLI_PLUGIN_DIRS) ?? '').split(':').filter((d) => d !== '');
  const relative = dirs.find((d) => !isAbsolute(d));
  if (relative !== undefined) {
    throw new WarmstartError('INVALID_ARGUMENT', "WARMSTART_DOCKER_CLI_PLUGIN_DIRS must hold absolute directories separated by ':'", {
      detail: `not absolute: ${relative}`,
    });
  }
  return dirs;
}

/** A comma-separated list of hosts, normalised (scheme and trailing '/' dropped, lowercased); empty entries ignored. */
export function hostList(raw: string): string[] {
  return [
    ...new Set(
      raw
        .split(',')
        .map(normalizeRegistryHost)
        .filter((h) => h !== ''),
    ),
  ];
}

/** WARMSTART_DOCKER_CERTS_DIR: an absolute directory (it need not exist: a node without one has no registry certificates). */
function dockerCertsDir(env: NodeJS.ProcessEnv): string {
  const dir = nonEmpty(env.WARMSTART_DOCKER_CERTS_DIR);
  if (dir === null) return DEFAULT_CERTS_DIR;
  if (!isAbsolute(dir)) {
    throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_DOCKER_CERTS_DIR must be an absolute directory', { detail: `not absolute: ${dir}` });
  }
  return dir;
}

function cachePullFirst(env: NodeJS.ProcessEnv): 'auto' | 'always' {
  const raw = nonEmpty(env.WARMSTART_CACHE_PULL_FIRST);
  if (raw === null || raw === 'auto') return 'auto';
  if (raw === 'always') return 'always';
  throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_CACHE_PULL_FIRST must be auto or always, got ${JSON.stringify(raw.slice(0, 40))}`);
}

function hostAccess(env: NodeJS.ProcessEnv): 'deny' | 'allow' {
  const raw = nonEmpty(env.WARMSTART_HOST_ACCESS);
  if (raw === null || raw === 'deny') return 'deny';
  if (raw === 'allow') return 'allow';
  throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_HOST_ACCESS must be deny or allow, got ${JSON.stringify(raw.slice(0, 40))}`);
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const appId = nonEmpty(env.WARMSTART_GITHUB_APP_ID);
  const keyFile = nonEmpty(env.WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE);
  const installationId = nonEmpty(env.WARMSTART_GITHUB_INSTALLATION_ID);
  const appParts = [appId, keyFile, installationId].filter((v) => v !== null).length;
  if (appParts !== 0 && appParts !== 3) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      'GitHub App credentials need all of WARMSTART_GITHUB_APP_ID, WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE and WARMSTART_GITHUB_INSTALLATION_ID',
    );
  }
  const githubApp =
    appParts === 3
      ? {
          appId: appId!,
          privateKeyFile: keyFile!,
          installationId: installationId!,
          apiUrl: nonEmpty(env.WARMSTART_GITHUB_API_URL),
          gitHosts: hostList(nonEmpty(env.WARMSTART_GITHUB_APP_GIT_HOSTS) ?? 'github.com'),
          registryScope: registryScope(env.WARMSTART_GITHUB_APP_REGISTRY_SCOPE),
        }
      : null;
  // ghcr.io is the default registry only when a GitHub App can log in to it.
  const cacheRegistry = nonEmpty(env.WARMSTART_CACHE_REGISTRY) ?? (githubApp ? 'ghcr.io' : null);
  const credentialHosts = nonEmpty(env.WARMSTART_REGISTRY_CREDENTIAL_HOSTS);
  return {
    stateDir: nonEmpty(env.WARMSTART_STATE_DIR) ?? '/var/lib/warmstart',
    runtimeDir: nonEmpty(env.WARMSTART_RUNTIME_DIR) ?? nonEmpty(env.RUNTIME_DIRECTORY) ?? '/run/warmstart',
    defaultImage: nonEmpty(env.WARMSTART_DEFAULT_IMAGE) ?? DEFAULT_IMAGE,
    cacheRegistry,
    registryUsername: nonEmpty(env.WARMSTART_REGISTRY_USERNAME),
    registryPassword: secretSetting(env, 'WARMSTART_REGISTRY_PASSWORD'),
    githubApp,
    gitToken: secretSetting(env, 'WARMSTART_GIT_TOKEN'),
    buildTimeoutMs: seconds(env, 'WARMSTART_BUILD_TIMEOUT_SECONDS', 3600),
    pushTimeoutMs: seconds(env, 'WARMSTART_PUSH_TIMEOUT_SECONDS', 600),
    devcontainerCli: devcontainerCli(env),
    allowInitializeCommand: env.WARMSTART_ALLOW_INITIALIZE_COMMAND === '1',
    registryCredentialHosts:
      credentialHosts !== null ? hostList(credentialHosts) : cacheRegistry !== null ? hostList(cacheRegistry.split('/')[0] ?? '') : [],
    gitTokenHosts: hostList(nonEmpty(env.WARMSTART_GIT_TOKEN_HOSTS) ?? 'github.com'),
    hostAccess: hostAccess(env),
    allRepositoriesTrusted: env.WARMSTART_ALL_REPOSITORIES_TRUSTED === '1',
    exactMaxAgeMs: parseMaxAge(env.WARMSTART_EXACT_MAX_AGE),
    ...signingConfigFromEnv(env),
    dockerCliPluginDirs: dockerCliPluginDirs(env),
    cachePullFirst: cachePullFirst(env),
    dockerCertsDir: dockerCertsDir(env),
  };
}

function registryScope(value: string | undefined): 'repository' | 'installation' {
  const v = nonEmpty(value) ?? 'repository';
  if (v !== 'repository' && v !== 'installation') {
    throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_GITHUB_APP_REGISTRY_SCOPE takes repository or installation, got ${JSON.stringify(v)}`);
  }
  return v;
}
