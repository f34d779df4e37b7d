import { describe, expect, it } from 'vitest';
import { DEFAULT_EXACT_MAX_AGE_MS, parseMaxAge, tooOld } from '../../../agent/src/cache/exact-max-age.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { WarmstartError } from '../../../agent/src/errors.js';

const H = 3_600_000;

describe('WARMSTART_EXACT_MAX_AGE', () => {
  it('reads days by default, and s/m/h/d/w suffixes', () => {
    expect(parseMaxAge(undefined)).toBe(7 * 24 * H);
    expect(parseMaxAge('')).toBe(DEFAULT_EXACT_MAX_AGE_MS);
    expect(parseMaxAge('3')).toBe(3 * 24 * H);
    expect(parseMaxAge('0.5')).toBe(12 * H);
    expect(parseMaxAge('12h')).toBe(12 * H);
    expect(parseMaxAge('7d')).toBe(7 * 24 * H);
    expect(parseMaxAge('2w')).toBe(14 * 24 * H);
    expect(parseMaxAge('30m')).toBe(30 * 60_000);
    expect(parseMaxAge(' 45S ')).toBe(45_000);
  });

  it('refuses zero, negatives, other units and junk', () => {
    for (const bad of ['0', '0d', '-1', '1y', '12 hours', 'h', '1e3', 'NaN']) {
      expect(() => parseMaxAge(bad), bad).toThrow(WarmstartError);
    }
    expect(() => configFromEnv({ WARMSTART_EXACT_MAX_AGE: 'soon' })).toThrow(/WARMSTART_EXACT_MAX_AGE/);
    expect(configFromEnv({ WARMSTART_EXACT_MAX_AGE: '36h' }).exactMaxAgeMs).toBe(36 * H);
    expect(configFromEnv({}).exactMaxAgeMs).toBe(DEFAULT_EXACT_MAX_AGE_MS);
  });
});

describe('tooOld: an expired exact image is not started', () => {
  const now = Date.parse('2026-12-05T12:00:00Z');
  it('accepts an image up to the limit and refuses it past it, saying when it was made', () => {
    expect(tooOld('2026-11-28T12:00:00Z', 7 * 24 * H, now)).toBeNull();
    const reason = tooOld('2026-11-28T11:59:59Z', 7 * 24 * H, now);
    expect(reason).toMatch(
      /^EXACT_IMAGE_EXPIRED: the exact image was made 2026-11-28T11:59:59Z \(7\.0d ago\), older than WARMSTART_EXACT_MAX_AGE \(7d\)$/,
    );
    expect(tooOld('2026-12-05T11:59:00Z', 30_000, now)).toMatch(/\(1m ago\).*\(30s\)/);
  });

  it('refuses an image whose age cannot be told', () => {
    expect(tooOld(null, 7 * 24 * H, now)).toMatch(/^EXACT_IMAGE_EXPIRED: .*no creation time/);
    expect(tooOld('not a time', 7 * 24 * H, now)).toMatch(/no creation time/);
  });
});
