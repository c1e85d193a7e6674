import { describe, expect, it } from "vitest";
import { DEFAULT_FAILURE_WINDOW, FailureWindow, type FailureWindowOptions } from "../src/core/failure-window.js";
import { InvalidArgumentError } from "../src/errors.js";

/** A clock the test moves by hand. */
function fakeClock(start = 0): { now: () => number; set(t: number): void } {
  let t = start;
  return { now: () => t, set: (next) => void (t = next) };
}

function repeat(n: number, fn: () => unknown): unknown[] {
  return Array.from({ length: n }, fn);
}

describe("FailureWindow", () => {
  it("has the documented defaults and starts empty", () => {
    expect(DEFAULT_FAILURE_WINDOW).toEqual({ windowMs: 10_000, buckets: 10, minRequests: 10, failureRate: 0.5, consecutiveFailures: 5 });
    const window = new FailureWindow();
    expect(window.snapshot()).toEqual({ requests: 0, failures: 0, failureRate: 0, consecutiveFailures: 0 });
    window.recordSuccess();
    expect(window.snapshot().requests).toBe(1);
  });

  it("does not judge the rate below minRequests", () => {
    const clock = fakeClock();
    const window = new FailureWindow({ minRequests: 10, failureRate: 0.5, consecutiveFailures: 0 }, clock.now);
    expect(repeat(9, () => window.recordFailure())).toEqual(Array(9).fill(false));
    expect(window.snapshot()).toEqual({ requests: 9, failures: 9, failureRate: 1, consecutiveFailures: 9 });
    expect(window.recordFailure()).toBe(true);
  });

  it("trips when the rate is exactly at the threshold, not just below it", () => {
    const clock = fakeClock();
    const below = new FailureWindow({ minRequests: 10, failureRate: 0.5, consecutiveFailures: 0 }, clock.now);
    repeat(6, () => below.recordSuccess());
    expect(repeat(4, () => below.recordFailure())).toEqual([false, false, false, false]);
    expect(below.snapshot().failureRate).toBe(0.4);

    const at = new FailureWindow({ minRequests: 10, failureRate: 0.5, consecutiveFailures: 0 }, clock.now);
    repeat(5, () => at.recordSuccess());
    expect(repeat(4, () => at.recordFailure())).toEqual([false, false, false, false]);
    expect(at.recordFailure()).toBe(true); // 5 / 10
    expect(at.snapshot()).toMatchObject({ requests: 10, failures: 5, failureRate: 0.5 });
  });

  it("compares a rate like 0.3 exactly (3 of 10 trips)", () => {
    const window = new FailureWindow({ minRequests: 10, failureRate: 0.3, consecutiveFailures: 0 }, fakeClock().now);
    repeat(7, () => window.recordSuccess());
    expect(window.recordFailure()).toBe(false); // 1 / 8
    expect(window.recordFailure()).toBe(false); // 2 / 9
    expect(window.recordFailure()).toBe(true); // 3 / 10
  });

  it("with failureRate 1 trips only when every outcome failed", () => {
    const window = new FailureWindow({ minRequests: 3, failureRate: 1, consecutiveFailures: 0 }, fakeClock().now);
    window.recordSuccess();
    expect(repeat(5, () => window.recordFailure())).toEqual(Array(5).fill(false));
    window.reset();
    expect(repeat(3, () => window.recordFailure())).toEqual([false, false, true]);
  });

  it("forgets failures once the window has passed", () => {
    const clock = fakeClock();
    const options = { windowMs: 1000, buckets: 10, minRequests: 4, failureRate: 0.5, consecutiveFailures: 0 };
    const inside = new FailureWindow(options, clock.now);
    const outside = new FailureWindow(options, clock.now);
    repeat(3, () => inside.recordFailure());
    repeat(3, () => outside.recordFailure());

    clock.set(999);
    expect(inside.recordFailure()).toBe(true); // 4 / 4 within the window

    clock.set(1000);
    expect(outside.snapshot()).toMatchObject({ requests: 0, failures: 0, failureRate: 0 });
    expect(outside.recordFailure()).toBe(false); // only 1 request in the window now
    expect(outside.snapshot()).toMatchObject({ requests: 1, failures: 1 });
  });

  it("expires bucket by bucket: an outcome counts for less than windowMs, never for windowMs", () => {
    const clock = fakeClock();
    const window = new FailureWindow({ windowMs: 1000, buckets: 10, consecutiveFailures: 0 }, clock.now);
    clock.set(50); // bucket [0, 100)
    window.recordFailure();
    clock.set(500); // bucket [500, 600)
    window.recordFailure();
    window.recordSuccess();
    clock.set(999);
    expect(window.snapshot()).toMatchObject({ requests: 3, failures: 2 });
    clock.set(1000); // the [0, 100) bucket leaves the window
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 1, failureRate: 0.5 });
    clock.set(1499);
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 1 });
    clock.set(1500);
    expect(window.snapshot()).toMatchObject({ requests: 0, failures: 0 });
  });

  it("clears everything after a long silence and counts afresh", () => {
    const clock = fakeClock();
    const window = new FailureWindow({ windowMs: 1000, buckets: 4, minRequests: 2, consecutiveFailures: 0 }, clock.now);
    window.recordFailure();
    window.recordSuccess();
    clock.set(1e9 + 0.5);
    expect(window.snapshot()).toMatchObject({ requests: 0, failures: 0 });
    expect(window.recordFailure()).toBe(false);
    expect(window.recordFailure()).toBe(true);
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 2 });
  });

  it("keeps the consecutive run across the window (it is not windowed)", () => {
    const clock = fakeClock();
    const window = new FailureWindow({ windowMs: 1000, minRequests: 100, consecutiveFailures: 3 }, clock.now);
    window.recordFailure();
    clock.set(5000);
    window.recordFailure();
    expect(window.snapshot()).toMatchObject({ requests: 1, consecutiveFailures: 2 });
    expect(window.recordFailure()).toBe(true);
  });

  it("trips after consecutiveFailures in a row regardless of minRequests and rate", () => {
    const window = new FailureWindow({ minRequests: 100, failureRate: 1, consecutiveFailures: 3 }, fakeClock().now);
    repeat(50, () => window.recordSuccess());
    expect(window.recordFailure()).toBe(false);
    expect(window.recordFailure()).toBe(false);
    expect(window.recordFailure()).toBe(true);
    expect(window.snapshot()).toMatchObject({ requests: 53, failures: 3, consecutiveFailures: 3 });
  });

  it("resets the consecutive run on success", () => {
    const window = new FailureWindow({ minRequests: 100, consecutiveFailures: 3 }, fakeClock().now);
    window.recordFailure();
    window.recordFailure();
    window.recordSuccess();
    expect(window.snapshot().consecutiveFailures).toBe(0);
    expect(window.recordFailure()).toBe(false);
    expect(window.recordFailure()).toBe(false);
    expect(window.snapshot().consecutiveFailures).toBe(2);
    expect(window.recordFailure()).toBe(true);
  });

  it("with consecutiveFailures 0 never trips on a run alone", () => {
    const window = new FailureWindow({ minRequests: 1_000_000, consecutiveFailures: 0 }, fakeClock().now);
    expect(repeat(1000, () => window.recordFailure()).some(Boolean)).toBe(false);
    expect(window.snapshot().consecutiveFailures).toBe(1000);
  });

  it("reset() forgets the window and the run", () => {
    const clock = fakeClock();
    const window = new FailureWindow({ minRequests: 2, failureRate: 0.5, consecutiveFailures: 2 }, clock.now);
    window.recordSuccess();
    window.recordFailure();
    expect(window.recordFailure()).toBe(true);
    window.reset();
    expect(window.snapshot()).toEqual({ requests: 0, failures: 0, failureRate: 0, consecutiveFailures: 0 });
    expect(window.recordFailure()).toBe(false); // 1 request: below minRequests, run of 1
    window.recordSuccess();
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 1, consecutiveFailures: 0 });
  });

  it("counts outcomes in the current bucket when the clock steps back", () => {
    const clock = fakeClock(5000);
    const window = new FailureWindow({ windowMs: 1000, buckets: 10, consecutiveFailures: 0 }, clock.now);
    window.recordFailure();
    clock.set(4000);
    window.recordSuccess();
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 1 });
    clock.set(5999); // still within the window of the 5000 bucket
    expect(window.snapshot()).toMatchObject({ requests: 2, failures: 1 });
    clock.set(6000);
    expect(window.snapshot()).toMatchObject({ requests: 0, failures: 0 });
  });

  it("agrees with a naive model over a random walk of the clock", () => {
    // mulberry32: a small deterministic PRNG.
    let seed = 12345;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
    const windowMs = 700;
    const buckets = 7;
    const bucketMs = windowMs / buckets;
    const clock = fakeClock(3);
    const window = new FailureWindow({ windowMs, buckets, minRequests: 1_000_000, consecutiveFailures: 0 }, clock.now);
    const log: { t: number; failed: boolean }[] = [];
    let t = 3;
    for (let i = 0; i < 5000; i++) {
      const r = random();
      t += r < 0.6 ? 0 : r < 0.9 ? random() * 150 : random() * 1200;
      clock.set(t);
      const failed = random() < 0.4;
      if (failed) window.recordFailure();
      else window.recordSuccess();
      log.push({ t, failed });
      // The log is in time order: drop what has left the window (the buckets before the last `buckets`).
      const current = Math.floor(t / bucketMs);
      while (log.length > 0 && Math.floor(log[0]!.t / bucketMs) <= current - buckets) log.shift();
      const snapshot = window.snapshot();
      expect(snapshot.requests).toBe(log.length);
      expect(snapshot.failures).toBe(log.filter((entry) => entry.failed).length);
    }
  });

  describe("rejects invalid options with InvalidArgumentError naming the option and value", () => {
    const cases: [keyof FailureWindowOptions, number][] = [
      ["windowMs", 0],
      ["windowMs", -1],
      ["windowMs", Number.NaN],
      ["windowMs", Infinity],
      ["buckets", 0],
      ["buckets", 1.5],
      ["minRequests", -1],
      ["minRequests", 2.5],
      ["failureRate", 0],
      ["failureRate", 1.01],
      ["failureRate", Number.NaN],
      ["consecutiveFailures", -1],
      ["consecutiveFailures", 0.5],
    ];
    for (const [option, value] of cases) {
      it(`${option}: ${value}`, () => {
        const make = (): FailureWindow => new FailureWindow({ [option]: value });
        expect(make).toThrow(InvalidArgumentError);
        expect(make).toThrow(option);
        expect(make).toThrow(String(value));
      });
    }

    it("a non-number", () => {
      const options = { windowMs: "1000" } as unknown as Partial<FailureWindowOptions>;
      expect(() => new FailureWindow(options)).toThrow(/windowMs: 1000/);
    });

    it("but takes undefined as the default", () => {
      const window = new FailureWindow({ windowMs: undefined, consecutiveFailures: undefined }, fakeClock().now);
      expect(repeat(5, () => window.recordFailure())).toEqual([false, false, false, false, true]);
    });
  });
});
