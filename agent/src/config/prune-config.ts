/**
 * The daemon's scheduled retention (agent/src/cache/prune-schedule.ts):
 * `WARMSTART_CACHE_PRUNE_INTERVAL` in hours turns it on; each run keeps the
 * newest `WARMSTART_CACHE_PRUNE_KEEP` exact tags per repository (default 5)
 * and removes those older than `WARMSTART_CACHE_PRUNE_OLDER_THAN` days
 * (default 30; 0 turns the age limit off).
 */
import { WarmstartError } from '../errors.js';

export interface PruneScheduleConfig {
  intervalMs: number;
  keep: number;
  olderThanMs: number | null;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

function number(env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, integer: boolean): number {
  const raw = env[key]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `${key} must be ${integer ? 'a whole number' : 'a number'} ≥ ${min}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return n;
}

/** Null when no interval is set: no scheduled pruning. */
export function pruneScheduleFromEnv(env: NodeJS.ProcessEnv): PruneScheduleConfig | null {
  const hours = number(env, 'WARMSTART_CACHE_PRUNE_INTERVAL', 0, 0, false);
  const keep = number(env, 'WARMSTART_CACHE_PRUNE_KEEP', 5, 0, true);
  const days = number(env, 'WARMSTART_CACHE_PRUNE_OLDER_THAN', 30, 0, false);
  if (hours === 0) return null;
  // Under a minute between runs would only hammer the registry; a typo like 0.0001 is refused.
  if (hours * HOUR_MS < 60_000)
    throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_CACHE_PRUNE_INTERVAL must be at least one minute (in hours: 0.0167)');
  return { intervalMs: Math.round(hours * HOUR_MS), keep, olderThanMs: days === 0 ? null : days * DAY_MS };
}
