import type { AgentConfig } from '../config/agent-config.js';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { hostAccessDenied, metadataHostAccess } from '../devcontainer/host-access.js';
import { imageHostAccess, repositoryHostAccess } from '../devcontainer/repository-host-access.js';
import type { DockerEngine } from '../docker/engine.js';
import type { WarmstartError } from '../errors.js';

/**
 * The operator's host-access policy (WARMSTART_HOST_ACCESS) applied to the
 * repository's config: null when it may start, else the HOST_ACCESS_DENIED
 * error the job recovers with. `allow` checks nothing.
 */
export async function hostAccessRefusal(
  policy: AgentConfig['hostAccess'],
  discovered: DiscoveredConfig,
  repoDir: string,
): Promise<WarmstartError | null> {
  if (policy === 'allow') return null;
  const findings = await repositoryHostAccess(discovered, repoDir);
  return findings.length === 0 ? null : hostAccessDenied(findings, discovered.relativePath);
}

/**
 * The same for an exact hit's image, whose `devcontainer.metadata` label the
 * CLI merges into the container: from `labels` when the registry's copy of
 * its config was read (an image named by digest has no other), else from the engine.
 */
export async function exactImageRefusal(
  policy: AgentConfig['hostAccess'],
  engine: Pick<DockerEngine, 'inspectImage'>,
  ref: string,
  labels?: Record<string, string>,
): Promise<WarmstartError | null> {
  if (policy === 'allow') return null;
  const findings = labels ? metadataHostAccess(labels['devcontainer.metadata']) : await imageHostAccess(engine, ref);
  return findings.length === 0 ? null : hostAccessDenied(findings, `the exact-hit image ${ref}`);
}

/**
 * Why a push is skipped, or null. With host access allowed, a repository's
 * container can read what the node holds, the job's DOCKER_CONFIG included;
 * an image it built is pushed only with credentials its own job supplied,
 * unless the operator says every repository here is trusted.
 */
export function nodeCredentialsPushOff(
  config: Pick<AgentConfig, 'hostAccess' | 'allRepositoriesTrusted'>,
  credentials: { source: string },
): string | null {
  if (config.hostAccess !== 'allow' || config.allRepositoriesTrusted || credentials.source === 'job') return null;
  return (
    `not pushed with the node's own ${credentials.source} registry credentials: host access is allowed (WARMSTART_HOST_ACCESS=allow), ` +
    'so a repository could have reached them; supply registry credentials with the job, or set WARMSTART_ALL_REPOSITORIES_TRUSTED=1 if every repository this node prepares is trusted'
  );
}
