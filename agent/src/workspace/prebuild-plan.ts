import { randomBytes } from 'node:crypto';
import type { AgentConfig } from '../config/agent-config.js';
import type { DiscoveredConfig } from '../devcontainer/discover.js';
import { WarmstartError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { nodeCredentialsPushOff } from './host-access-gate.js';
import { planJob, type JobPlan } from './plan.js';
import type { PrepareRequest } from './request.js';

/** What a caller (CLI or control plane) asks of a prebuild. */
export interface PrebuildRequest {
  repository: string;
  configName?: string | null;
  /** as a workspace's (request.ts); the registry defaults to the node's */
  cache?: { registry?: string | null; ref?: string | null; username?: string | null; password?: string | null };
  /** cwd for relative local repository paths (the CLI's) */
  cwd?: string;
}

/** A prebuild that passed validation: the workspace request it runs as, and that request's plan. */
export interface PrebuildPlan {
  id: string;
  request: PrepareRequest;
  plan: JobPlan & { cacheRef: string };
}

/**
 * The internal workspace id of one prebuild. Random, so no user can name it
 * ahead of time; the prebuild also checks that nothing of a workspace of
 * that id exists before it uses it (prebuild.ts).
 */
export function prebuildId(): string {
  return `prebuild-${randomBytes(6).toString('hex')}`;
}

/**
 * Validates a prebuild completely before anything is created. Input errors
 * are a workspace's (plan.ts); a prebuild without a cache registry has
 * nothing to push to, which is known from the input alone, so it is refused
 * here too (INVALID_REGISTRY, as `warmstart cache ref` does).
 */
export function planPrebuild(req: PrebuildRequest, config: AgentConfig, id: string): PrebuildPlan {
  const request: PrepareRequest = {
    workspaceId: id,
    repository: req.repository,
    configName: req.configName ?? null,
    cache: {
      registry: req.cache?.registry ?? null,
      ref: req.cache?.ref ?? null,
      username: req.cache?.username ?? null,
      password: req.cache?.password ?? null,
    },
    // Only node-scoped callers start prebuilds (routes/prebuild-routes.ts).
    scope: 'node',
    ...(req.cwd ? { cwd: req.cwd } : {}),
  };
  const plan = planJob(request, config);
  if (!plan.cacheRef) {
    throw new WarmstartError(
      'INVALID_REGISTRY',
      'a prebuild needs a cache registry: pass one (--cache-registry, cache.registry) or set WARMSTART_CACHE_REGISTRY',
    );
  }
  return { id, request, plan: { ...plan, cacheRef: plan.cacheRef } };
}

/** Why this node may not push with these credentials (skipped), or null. The same rules as a workspace's push (job.ts planPush). */
export function pushSkipReason(
  config: Pick<AgentConfig, 'hostAccess' | 'allRepositoriesTrusted'>,
  credentials: RegistryCredentials | null,
): string | null {
  if (!credentials) return 'no registry credentials to push with';
  return nodeCredentialsPushOff(config, credentials);
}

/** Why a config builds no image to push (skipped), or null for a Dockerfile config. */
export function configSkipReason(discovered: DiscoveredConfig | null): string | null {
  if (discovered === null) return 'no devcontainer config in the repository';
  if (discovered.kind !== 'dockerfile') return `${discovered.kind}-based config: no built image to push`;
  return null;
}
