/**
 * The statistics behind a circuit breaker: outcomes over a sliding time window, plus a run of
 * consecutive failures. The breaker's states (closed, open, half-open) live elsewhere; this only
 * answers "does this failure trip it?".
 *
 * The window is a fixed ring of `buckets` counters, each `windowMs / buckets` wide, with running
 * totals beside it. Recording an outcome reads the clock, and only when the clock has moved into
 * a new bucket clears the buckets it skipped (all of them, at most once, after a long silence).
 * So `recordSuccess`, which runs once per RPC call, is a clock read, a division and two
 * increments: O(1), no allocation. Because expiry is per bucket, an outcome counts for between
 * `windowMs - windowMs / buckets` and `windowMs`; never for `windowMs` or longer.
 */
import { InvalidArgumentError } from "../errors.js";

export interface FailureWindowOptions {
  /** The sliding time window, in ms. */
  windowMs: number;
  /** The window is split into this many buckets; more buckets, smoother expiry. */
  buckets: number;
  /** The failure rate is only judged with at least this many outcomes in the window. */
  minRequests: number;
  /** 0 < rate <= 1: trip when failures / requests >= this. */
  failureRate: number;
  /** Trip after this many failures in a row, whatever the window says; 0 disables the rule. */
  consecutiveFailures: number;
}

export const DEFAULT_FAILURE_WINDOW: FailureWindowOptions = Object.freeze({
  windowMs: 10_000,
  buckets: 10,
  minRequests: 10,
  failureRate: 0.5,
  consecutiveFailures: 5,
});

export interface FailureWindowSnapshot {
  requests: number;
  failures: number;
  /** failures / requests, or 0 with no requests in the window. */
  failureRate: number;
  consecutiveFailures: number;
}

export class FailureWindow {
  readonly #minRequests: number;
  readonly #failureRate: number;
  readonly #consecutiveLimit: number;
  readonly #bucketCount: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  /** Outcomes per bucket; `#failures[i] <= #requests[i]`. */
  readonly #requests: Float64Array;
  readonly #failures: Float64Array;
  /** The absolute bucket number (`floor(now / bucketMs)`) of the current bucket, and its ring slot. */
  #bucket: number;
  #slot = 0;
  #totalRequests = 0;
  #totalFailures = 0;
  #consecutive = 0;

  constructor(options: Partial<FailureWindowOptions> = {}, now: () => number = () => performance.now()) {
    const windowMs = options.windowMs ?? DEFAULT_FAILURE_WINDOW.windowMs;
    const buckets = options.buckets ?? DEFAULT_FAILURE_WINDOW.buckets;
    const minRequests = options.minRequests ?? DEFAULT_FAILURE_WINDOW.minRequests;
    const failureRate = options.failureRate ?? DEFAULT_FAILURE_WINDOW.failureRate;
    const consecutive = options.consecutiveFailures ?? DEFAULT_FAILURE_WINDOW.consecutiveFailures;
    if (typeof windowMs !== "number" || !Number.isFinite(windowMs) || windowMs <= 0) {
      throw invalid("windowMs", windowMs, "a finite number > 0");
    }
    if (!Number.isSafeInteger(buckets) || buckets < 1) throw invalid("buckets", buckets, "an integer >= 1");
    if (!Number.isSafeInteger(minRequests) || minRequests < 0) {
      throw invalid("minRequests", minRequests, "an integer >= 0");
    }
    if (typeof failureRate !== "number" || !(failureRate > 0 && failureRate <= 1)) {
      throw invalid("failureRate", failureRate, "a number with 0 < failureRate <= 1");
    }
    if (!Number.isSafeInteger(consecutive) || consecutive < 0) {
      throw invalid("consecutiveFailures", consecutive, "an integer >= 0 (0 disables)");
    }
    this.#minRequests = minRequests;
    this.#failureRate = failureRate;
    this.#consecutiveLimit = consecutive;
    this.#bucketCount = buckets;
    this.#bucketMs = windowMs / buckets;
    this.#now = now;
    this.#requests = new Float64Array(buckets);
    this.#failures = new Float64Array(buckets);
    this.#bucket = Math.floor(now() / this.#bucketMs);
  }

  recordSuccess(): void {
    this.#advance();
    this.#requests[this.#slot]! += 1;
    this.#totalRequests += 1;
    this.#consecutive = 0;
  }

  /**
   * Records a failure; true when it trips either rule. The answer stays true for later failures
   * until `reset()`, which the breaker calls when it trips.
   */
  recordFailure(): boolean {
    this.#advance();
    this.#requests[this.#slot]! += 1;
    this.#failures[this.#slot]! += 1;
    this.#totalRequests += 1;
    this.#totalFailures += 1;
    this.#consecutive += 1;
    if (this.#consecutiveLimit > 0 && this.#consecutive >= this.#consecutiveLimit) return true;
    // Division, not `failures >= rate * requests`: 3 / 10 equals the literal 0.3, 0.3 * 10 does not equal 3.
    return this.#totalRequests >= this.#minRequests && this.#totalFailures / this.#totalRequests >= this.#failureRate;
  }

  /** Forgets every outcome and the consecutive run. */
  reset(): void {
    this.#requests.fill(0);
    this.#failures.fill(0);
    this.#totalRequests = 0;
    this.#totalFailures = 0;
    this.#consecutive = 0;
    this.#bucket = Math.floor(this.#now() / this.#bucketMs);
  }

  snapshot(): FailureWindowSnapshot {
    this.#advance();
    const requests = this.#totalRequests;
    const failures = this.#totalFailures;
    return { requests, failures, failureRate: requests === 0 ? 0 : failures / requests, consecutiveFailures: this.#consecutive };
  }

  /** Moves the current bucket up to the clock, clearing the buckets that fell out of the window. */
  #advance(): void {
    const bucket = Math.floor(this.#now() / this.#bucketMs);
    // Same bucket (the hot path), or a clock that stepped back: count it in the current bucket.
    if (bucket <= this.#bucket) return;
    const steps = bucket - this.#bucket;
    this.#bucket = bucket;
    if (steps >= this.#bucketCount) {
      this.#requests.fill(0);
      this.#failures.fill(0);
      this.#totalRequests = 0;
      this.#totalFailures = 0;
      return;
    }
    let slot = this.#slot;
    for (let i = 0; i < steps; i++) {
      slot = slot + 1 === this.#bucketCount ? 0 : slot + 1;
      this.#totalRequests -= this.#requests[slot]!;
      this.#totalFailures -= this.#failures[slot]!;
      this.#requests[slot] = 0;
      this.#failures[slot] = 0;
    }
    this.#slot = slot;
  }
}

function invalid(option: string, value: unknown, expected: string): InvalidArgumentError {
  return new InvalidArgumentError(`Invalid failure window option ${option}: ${String(value)} (must be ${expected})`);
}
