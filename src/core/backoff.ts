/**
 * Exponential restart/retry backoff with random jitter, as Akka's `BackoffSupervisor` computes
 * it: the jitter spreads out workers that failed together so they do not all retry at once.
 */
import { InvalidArgumentError } from "../errors.js";

export interface BackoffOptions {
  /** The first delay, in ms. */
  minMs: number;
  /** The cap before jitter, in ms. */
  maxMs: number;
  /** Each attempt's delay is this many times the previous one (until the cap). */
  multiplier: number;
  /** 0..1: up to this fraction of the delay is added at random. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 });

/** Fills in defaults and validates, so `backoffDelay` can trust its options. */
export function resolveBackoff(options: Partial<BackoffOptions> = {}): BackoffOptions {
  const minMs = options.minMs ?? DEFAULT_BACKOFF.minMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const multiplier = options.multiplier ?? DEFAULT_BACKOFF.multiplier;
  const jitter = options.jitter ?? DEFAULT_BACKOFF.jitter;
  if (typeof minMs !== "number" || !Number.isFinite(minMs) || minMs < 0) {
    throw invalid("minMs", minMs, "a finite number >= 0");
  }
  if (typeof maxMs !== "number" || !Number.isFinite(maxMs) || maxMs < minMs) {
    throw invalid("maxMs", maxMs, `a finite number >= minMs (${minMs})`);
  }
  if (typeof multiplier !== "number" || !Number.isFinite(multiplier) || multiplier < 1) {
    throw invalid("multiplier", multiplier, "a finite number >= 1");
  }
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter <= 1)) {
    throw invalid("jitter", jitter, "a number with 0 <= jitter <= 1");
  }
  return { minMs, maxMs, multiplier, jitter };
}

/**
 * Akka-style: `min(maxMs, minMs * multiplier^attempt) * (1 + random() * jitter)`, so the result
 * lies in `[base, base * (1 + jitter)]` and never exceeds `maxMs * (1 + jitter)`. `attempt` is
 * 0-based. Never NaN or Infinity, however large `attempt` is: the power overflows to Infinity and
 * the cap takes over, `minMs` 0 stays 0, and the result is capped at `Number.MAX_VALUE`.
 * `random` should return [0, 1); anything outside, NaN included, is clamped into [0, 1].
 * `options` are trusted: pass them through `resolveBackoff` once.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  if (!Number.isSafeInteger(attempt) || attempt < 0) {
    throw new InvalidArgumentError(`Invalid backoff attempt: ${String(attempt)} (must be an integer >= 0)`);
  }
  const { minMs, maxMs, multiplier, jitter } = options;
  // 0 * Infinity is NaN: a zero first delay stays zero for every attempt.
  const base = minMs === 0 ? 0 : Math.min(maxMs, minMs * multiplier ** attempt);
  const r = random();
  const unit = r > 0 ? (r < 1 ? r : 1) : 0;
  // Only a maxMs near Number.MAX_VALUE could overflow here; keep the promise of a finite delay.
  return Math.min(base * (1 + unit * jitter), Number.MAX_VALUE);
}

function invalid(option: string, value: unknown, expected: string): InvalidArgumentError {
  return new InvalidArgumentError(`Invalid backoff option ${option}: ${String(value)} (must be ${expected})`);
}
