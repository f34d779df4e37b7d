/** Small statistics for the bench: medians, percentiles, pairwise ratios. */

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100): the smallest value with at least p% of the samples at or below it. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1]!;
}

export interface PairRatio {
  /** median of the per-pair ratios a[i] / b[i] */
  median: number | null;
  /** a[i] / b[i] for every i where both runs succeeded (null where one failed) */
  pairs: (number | null)[];
  /** how many pairs went into the median */
  n: number;
}

/**
 * Ratios computed pair by pair: run i of A over run i of B (the two ran next
 * to each other, so a slow moment of the machine hits both), then the median
 * of those ratios. A pair with a failed run is left out.
 */
export function pairRatio(a: readonly (number | null)[], b: readonly (number | null)[]): PairRatio {
  const pairs: (number | null)[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    pairs.push(typeof x === 'number' && typeof y === 'number' && y > 0 ? x / y : null);
  }
  const ok = pairs.filter((r): r is number => r !== null);
  return { median: median(ok), pairs, n: ok.length };
}

export const round = (v: number | null, digits = 0): number | null => (v === null ? null : Number(v.toFixed(digits)));
