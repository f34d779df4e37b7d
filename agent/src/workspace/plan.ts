import type { JobControls } from '../../../shared/src/workspace-result.js';
import type { AgentConfig } from '../config/agent-config.js';
import { builderRef, parseCacheRegistry, parseImageRef, resolveCacheRef, type Builder } from '../cache/ref.js';
import type { DevcontainerCli } from '../devcontainer/cli.js';
import { checkExplicitCacheRef, checkJobRegistry } from '../cache/ref-scope.js';
import { WarmstartError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { workspaceVolume } from './remove.js';
import { chooseGitToken } from './git-token.js';
import { parseRepository, repositoryAuthority, type Repository } from './repository.js';
import type { PrepareRequest } from './request.js';
import { validateConfigName, validateWorkspaceId } from './validate.js';

/** A request that passed validation, with everything derived from it. */
export interface JobPlan {
  workspaceId: string;
  repo: Repository;
  configName: string | null;
  lightweight: boolean;
  /** the token the clone uses (git-token.ts decides which, if any) */
  gitToken: string | null;
  /** whose it is: only a `job` token is offered inside the container */
  gitTokenSource: 'job' | 'github-app' | 'node' | null;
  /** host[:port] the clone's credential helper answers for */
  gitTokenHost: string | null;
  /** why the node's token was held back (for the events), or null */
  gitTokenNote: string | null;
  /** the repository's name when it is on the GitHub App's git hosts: the App's registry token is narrowed to it */
  githubRepository: string | null;
  /** the moving cache ref, or null with the reason in cacheOffReason */
  cacheRef: string | null;
  cacheOffReason: string | null;
  registryHost: string | null;
  jobCredentials: RegistryCredentials | null;
  pushOffReason: string | null;
  pushTimeoutMs: number;
  /** the job's own cache and push settings, as the result reports them */
  controls: JobControls;
  volume: string;
  /** where the repository appears inside the container */
  workspaceFolder: string;
}

/**
 * Validates a request completely before anything is created: every input
 * error surfaces here, as a WarmstartError with an input code.
 */
export function planJob(req: PrepareRequest, config: AgentConfig): JobPlan {
  const workspaceId = validateWorkspaceId(req.workspaceId);
  // An empty value given on purpose (`--config-name ''`) is refused, not read as "none".
  const configName = req.configName !== null && req.configName !== undefined ? validateConfigName(req.configName) : null;
  const repo = parseRepository(req.repository, req.cwd ? { cwd: req.cwd } : {});
  const lightweight = req.lightweight === true;
  const gitToken = chooseGitToken(repo, req.gitToken, config);

  const cacheDisabled = req.cache?.disabled === true;
  const registrySetting = req.cache?.registry ?? config.cacheRegistry;
  const registry = registrySetting !== null && registrySetting !== undefined ? parseCacheRegistry(registrySetting) : null;
  if (req.cache?.registry !== null && req.cache?.registry !== undefined) {
    checkJobRegistry(registry, {
      scope: req.scope ?? 'node',
      configured: config.cacheRegistry !== null ? parseCacheRegistry(config.cacheRegistry) : null,
      credentialHosts: config.registryCredentialHosts,
    });
  }
  const explicitRef = req.cache?.ref ?? null;
  if (explicitRef !== null) {
    parseImageRef(explicitRef); // refuse a malformed (or empty) ref up front
    // Whatever the cache settings say: a forbidden ref is refused, never quietly unused.
    checkExplicitCacheRef(explicitRef, { scope: req.scope ?? 'node', registry, repo });
  }

  let cacheRef: string | null = null;
  let cacheOffReason: string | null = null;
  if (lightweight) cacheOffReason = 'lightweight workspace: nothing is built';
  else if (cacheDisabled) cacheOffReason = 'cache disabled for this job';
  else {
    cacheRef = resolveCacheRef({ cacheRef: explicitRef ?? undefined, registry, repo, configName });
    if (!cacheRef) cacheOffReason = 'no cache registry configured';
  }
  const registryHost = cacheRef ? parseImageRef(cacheRef).registryHost : null;

  const username = req.cache?.username ?? null;
  const password = req.cache?.password ?? null;
  if ((username === null) !== (password === null)) {
    throw new WarmstartError('INVALID_ARGUMENT', 'registry username and password go together: give both or neither');
  }
  const jobCredentials =
    username !== null && password !== null && registryHost ? { registry: registryHost, username, password, source: 'job' as const } : null;

  const pushTimeoutMs = req.push?.timeoutMs ?? config.pushTimeoutMs;
  if (!Number.isFinite(pushTimeoutMs) || pushTimeoutMs <= 0) {
    throw new WarmstartError('INVALID_ARGUMENT', 'push timeout must be a positive number of seconds');
  }

  return {
    workspaceId,
    repo,
    configName,
    lightweight,
    gitToken: gitToken.token,
    gitTokenSource: gitToken.source,
    gitTokenHost: gitToken.host,
    gitTokenNote: gitToken.note,
    githubRepository: onGithubAppHost(repo, config) ? repo.name : null,
    cacheRef,
    cacheOffReason,
    registryHost,
    jobCredentials,
    pushOffReason: req.push?.disabled ? 'push disabled for this job' : null,
    pushTimeoutMs,
    controls: { noCache: cacheDisabled, noPush: req.push?.disabled === true, pushTimeoutSeconds: pushTimeoutMs / 1000 },
    volume: workspaceVolume(workspaceId),
    workspaceFolder: `/workspaces/${repo.name.replace(/[^A-Za-z0-9._-]/g, '-')}`,
  };
}

/** The builder this node's builds reach (the CLI decides the same way, cli-runner.ts). */
export async function builderOf(devcontainer: Pick<DevcontainerCli, 'usesClassicBuilder'>): Promise<Builder> {
  return (await devcontainer.usesClassicBuilder()) ? 'classic' : 'buildkit';
}

/** The plan with the moving ref of `builder` (agent/src/cache/ref.ts builderRef). */
export function forBuilder<P extends JobPlan>(plan: P, builder: Builder): P {
  return plan.cacheRef ? { ...plan, cacheRef: builderRef(plan.cacheRef, builder) } : plan;
}

/** Whether the repository lives on one of the GitHub App's git hosts (any transport but a local path). */
function onGithubAppHost(repo: Repository, config: { githubApp?: { gitHosts: string[] } | null }): boolean {
  if (!config.githubApp || repo.kind === 'local') return false;
  const host = repo.kind === 'ssh' ? (repo.host?.toLowerCase() ?? null) : repositoryAuthority(repo);
  return host !== null && config.githubApp.gitHosts.includes(host);
}
