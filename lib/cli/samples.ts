/**
 * Latency samples of `tmem bench` (and of the benchmarks in bench/, which
 * import them from here): nearest-rank percentiles of nanosecond samples in
 * microseconds, as bench/native/benchutil.h computes them, and a deterministic
 * random page order.
 */

/** Percentiles in microseconds (nearest rank, as bench/native/benchutil.h). */
export interface Summary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
  n: number;
}

/** A Summary with the smallest sample too (fault-latency's figures, as uffd_min_handler prints them). */
export interface SummaryWithMin {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  mean: number;
  min: number;
  max: number;
  n: number;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/** The nearest-rank q-quantile of ascending samples. */
export function nearestRank(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
}

/** Percentiles of ascending samples in nanoseconds, in microseconds; all 0 when there are none. */
export function summarizeSorted(s: Float64Array): Summary {
  const n = s.length;
  if (n === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, mean: 0, max: 0, n: 0 };
  const at = (q: number): number => nearestRank(s, q) / 1000;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  return {
    p50: r2(at(0.5)),
    p90: r2(at(0.9)),
    p99: r2(at(0.99)),
    p999: r2(at(0.999)),
    mean: r2(sum / n / 1000),
    max: r2(s[n - 1] / 1000),
    n,
  };
}

/** Percentiles of samples given in nanoseconds, in microseconds; all 0 when there are none. */
export function summarize(ns: ArrayLike<number>): Summary {
  return summarizeSorted(Float64Array.from(ns).sort());
}

/** summarize() with the smallest sample (us) as `min`; at least one sample. */
export function summarizeWithMin(ns: ArrayLike<number>): SummaryWithMin {
  const s = Float64Array.from(ns).sort();
  const { p50, p90, p99, p999, mean, max, n } = summarizeSorted(s);
  return { p50, p90, p99, p999, mean, min: r2(s[0] / 1000), max, n };
}

/** 0..n-1 in a random order (Fisher-Yates with xorshift32; deterministic per seed). */
export function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}
