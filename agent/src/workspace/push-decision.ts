import type { AgentConfig } from '../config/agent-config.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { nodeCredentialsPushOff } from './host-access-gate.js';
import type { JobPlan } from './plan.js';

/** Why a ready workspace's image is not pushed: skipped on purpose, or failed for a fault an operator must see. */
export type PushRefusal = { status: 'skipped' | 'failed'; reason: string };

/**
 * Whether a ready workspace's image is pushed; null when it is. The first
 * rule that applies wins: no cache ref, nothing built, an exact hit (the
 * image is there already), the job's --no-push, a credential source that
 * failed (`blocked` without credentials: failed), no credentials (pull
 * only), node credentials under host access `allow`, a refused push probe (failed).
 */
export function pushDecision(o: {
  plan: Pick<JobPlan, 'cacheRef' | 'cacheOffReason' | 'pushOffReason'>;
  /** the config's kind: only a Dockerfile config builds an image */
  kind: string;
  exactHit: boolean;
  credentials: RegistryCredentials | null;
  /** cache-phase.ts pushBlocked: the push probe's refusal, or the credential source's failure */
  blocked: string | null;
  config: Pick<AgentConfig, 'hostAccess' | 'allRepositoriesTrusted'>;
}): PushRefusal | null {
  const skip = (reason: string): PushRefusal => ({ status: 'skipped', reason });
  if (!o.plan.cacheRef) return skip(o.plan.cacheOffReason ?? 'no cache ref');
  if (o.kind !== 'dockerfile') return skip(`${o.kind}-based config: no built image to cache`);
  if (o.exactHit) return skip('exact hit: the image is in the registry already');
  if (o.plan.pushOffReason) return skip(o.plan.pushOffReason);
  if (!o.credentials) return o.blocked ? { status: 'failed', reason: o.blocked } : skip('no registry credentials: pull only');
  const untrusted = nodeCredentialsPushOff(o.config, o.credentials);
  if (untrusted) return skip(untrusted);
  return o.blocked ? { status: 'failed', reason: o.blocked } : null;
}
