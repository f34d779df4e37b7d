import type { Caller } from '../jobs/job-manager.js';
import type { Principal } from './auth.js';

/**
 * What the job side needs to know of who asked: a JWT with a `workspace`
 * claim reaches that workspace only (`workspace` scope); the static token,
 * a JWT without the claim and no auth (tests) reach the node. The owner is
 * the JWT's subject, recorded on a new workspace (golden images take it).
 */
export function callerOf(principal: Principal | null): Caller {
  if (principal?.kind !== 'jwt') return { scope: 'node', owner: null };
  return { scope: principal.workspace !== undefined ? 'workspace' : 'node', owner: principal.subject ?? null };
}
