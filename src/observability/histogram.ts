/**
 * A latency histogram in fixed memory: exponential buckets (each 1.25× the last) from 25 µs to
 * about 2 minutes, 70 counters, so recording is one logarithm and one increment and a quantile is
 * one pass — no sample arrays. A quantile is reported as its bucket's upper bound: at most 25% high.
 */

const MIN_MS = 0.025;
const GROWTH = 1.25;
const BUCKETS = 70;
const LOG_GROWTH = Math.log(GROWTH);

/** Upper bounds of the buckets, in ms (the last one is open: +Infinity). */
export const HISTOGRAM_BOUNDS_MS: readonly number[] = Object.freeze(
  Array.from({ length: BUCKETS }, (_, i) => (i === BUCKETS - 1 ? Infinity : MIN_MS * Math.pow(GROWTH, i))),
);

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumMs = 0;

  record(ms: number): void {
    const index = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.#counts[index]!++;
    this.#count++;
    this.#sumMs += ms;
  }

  get count(): number {
    return this.#count;
  }

  get sumMs(): number {
    return this.#sumMs;
  }

  /** The upper bound (ms) of the bucket holding quantile `q` (0..1); undefined with no samples. */
  quantile(q: number): number | undefined {
    if (this.#count === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return i === BUCKETS - 1 ? HISTOGRAM_BOUNDS_MS[BUCKETS - 2] : HISTOGRAM_BOUNDS_MS[i];
    }
    return undefined;
  }

  /** Cumulative counts per bucket upper bound (for Prometheus `_bucket{le=…}`). */
  cumulative(): Array<{ leMs: number; count: number }> {
    let seen = 0;
    return HISTOGRAM_BOUNDS_MS.map((leMs, i) => ({ leMs, count: (seen += this.#counts[i]!) }));
  }
}
