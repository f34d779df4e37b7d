import type { CreateWorkspaceBody } from '../../../shared/src/api.js';
import { WarmstartError } from '../errors.js';
import { parseRepository } from '../workspace/repository.js';
import type { PrepareRequest } from '../workspace/request.js';
import type { Caller } from './job-manager.js';

/**
 * Turns an API body into a pipeline request. Local paths and file:// URLs
 * are refused unless the operator allowed them: a control plane must not
 * make the agent read host directories.
 */
export function requestFromBody(
  body: CreateWorkspaceBody,
  node: { allowLocalRepos: boolean; maxPushTimeoutMs: number },
  caller?: Caller,
): PrepareRequest {
  const { allowLocalRepos, maxPushTimeoutMs } = node;
  if (!allowLocalRepos && parseRepository(body.repository, { cwd: '/' }).kind === 'local') {
    throw new WarmstartError(
      'INVALID_REPOSITORY',
      'local paths and file:// URLs are refused by this agent (set WARMSTART_ALLOW_LOCAL_REPOS=1 to allow them)',
    );
  }
  const pushTimeoutMs = body.pushTimeoutSeconds === undefined ? null : Math.round(body.pushTimeoutSeconds * 1000);
  // A caller may shorten the node's push limit, not lengthen it: pushes hold the node's push queue.
  if (pushTimeoutMs !== null && (pushTimeoutMs < 1 || pushTimeoutMs > maxPushTimeoutMs)) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `pushTimeoutSeconds must be between 0.001 and this node's limit of ${maxPushTimeoutMs / 1000} s (WARMSTART_PUSH_TIMEOUT_SECONDS)`,
    );
  }
  return {
    workspaceId: body.id,
    repository: body.repository,
    configName: body.configName ?? null,
    lightweight: body.lightweight === true,
    gitToken: body.gitToken ?? null,
    cache: body.cache
      ? {
          registry: body.cache.registry,
          ref: body.cache.ref ?? null,
          username: body.cache.username ?? null,
          password: body.cache.password ?? null,
          disabled: body.noCache === true,
        }
      : { disabled: body.noCache === true },
    push: { disabled: body.noPush === true, timeoutMs: pushTimeoutMs },
    // No caller: the API's own tests and the static token; node-wide, no owner.
    scope: caller?.scope ?? 'node',
    owner: caller?.owner ?? null,
    cwd: '/',
  };
}
