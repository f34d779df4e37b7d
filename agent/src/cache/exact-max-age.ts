/**
 * How old an exact image may be and still be started. Pinning the bases
 * (agent/src/cache/pinned-inputs.ts) cannot see what a build fetched itself:
 * an unpinned `apt-get install` or `curl` gives newer packages next week.
 * So an exact image expires: past `WARMSTART_EXACT_MAX_AGE` the start builds
 * every step again, without the layer cache (agent/src/workspace/job.ts),
 * and pushes the new image under the same exact tag.
 */
import { WarmstartError } from '../errors.js';

export const DEFAULT_EXACT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `WARMSTART_EXACT_MAX_AGE`: a number of days (`7`, `0.5`) or a number with
 * a unit, `s`, `m`, `h`, `d` or `w` (`12h`, `30m`, `2w`). Unset or empty:
 * 7 days. Anything else, or not above zero, is refused at start-up.
 */
export function parseMaxAge(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_EXACT_MAX_AGE_MS;
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/i.exec(raw.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[(m[2] || 'd').toLowerCase()]! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `WARMSTART_EXACT_MAX_AGE must be a number of days or a number with s, m, h, d or w (e.g. 12h), got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return Math.round(ms);
}

/** `7d`, `1.5d`, `12h`, `90s`: in the largest unit that fits, for reasons. */
export function formatAge(ms: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const n = ms / UNIT_MS[unit]!;
    if (n >= 1) return `${Number.isInteger(n) ? n : n.toFixed(1)}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}

/**
 * Why an exact image made at `createdAt` (the engine's image Created, an ISO
 * time) is too old to start at `now`; null when it is young enough. An image
 * without a readable time is refused: its age cannot be told.
 */
export function tooOld(createdAt: string | null, maxAgeMs: number, now = Date.now()): string | null {
  const made = createdAt === null ? NaN : Date.parse(createdAt);
  if (!Number.isFinite(made)) return 'EXACT_IMAGE_EXPIRED: the exact image has no creation time, so its age is unknown';
  const age = now - made;
  if (age <= maxAgeMs) return null;
  return `EXACT_IMAGE_EXPIRED: the exact image was made ${createdAt} (${formatAge(age)} ago), older than WARMSTART_EXACT_MAX_AGE (${formatAge(maxAgeMs)})`;
}
