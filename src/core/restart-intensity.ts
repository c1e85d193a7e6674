/**
 * OTP's restart intensity: a supervisor that restarts more than `intensity` times within
 * `periodMs` gives up instead of looping on a child that cannot stay up.
 *
 * Only the timestamps that can still matter are kept: those younger than the period, and never
 * more than `intensity + 1` (the oldest beyond that can no longer change the answer). Restarts
 * are rare, so a plain array trimmed from the front is enough.
 */
import { InvalidArgumentError } from "../errors.js";

export class RestartIntensity {
  readonly #intensity: number;
  readonly #periodMs: number;
  readonly #now: () => number;
  /** Restart times, oldest first; at most `intensity + 1` of them. */
  #times: number[] = [];

  constructor(intensity: number, periodMs: number, now: () => number = () => performance.now()) {
    if (!Number.isSafeInteger(intensity) || intensity < 0) {
      throw new InvalidArgumentError(`Invalid restart intensity: ${String(intensity)} (must be an integer >= 0)`);
    }
    if (typeof periodMs !== "number" || !Number.isFinite(periodMs) || periodMs <= 0) {
      throw new InvalidArgumentError(`Invalid restart periodMs: ${String(periodMs)} (must be a finite number > 0)`);
    }
    this.#intensity = intensity;
    this.#periodMs = periodMs;
    this.#now = now;
  }

  /** Records one restart; returns true when the limit is now exceeded (count within period > intensity). */
  record(): boolean {
    const now = this.#now();
    this.#expire(now);
    this.#times.push(now);
    if (this.#times.length > this.#intensity + 1) this.#times.shift();
    return this.#times.length > this.#intensity;
  }

  /** Restarts within the period ending now. */
  get count(): number {
    this.#expire(this.#now());
    return this.#times.length;
  }

  reset(): void {
    this.#times = [];
  }

  /** Drops restarts at least `periodMs` old: a restart counts while `now - time < periodMs`. */
  #expire(now: number): void {
    const times = this.#times;
    let old = 0;
    while (old < times.length && now - times[old]! >= this.#periodMs) old++;
    if (old > 0) times.splice(0, old);
  }
}
