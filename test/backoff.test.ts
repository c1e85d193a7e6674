import { describe, expect, it } from "vitest";
import { backoffDelay, DEFAULT_BACKOFF, resolveBackoff, type BackoffOptions } from "../src/core/backoff.js";
import { InvalidArgumentError } from "../src/errors.js";

const noJitter = (): number => 0;

describe("resolveBackoff", () => {
  it("fills in the documented defaults", () => {
    expect(DEFAULT_BACKOFF).toEqual({ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 });
    expect(resolveBackoff()).toEqual(DEFAULT_BACKOFF);
    expect(resolveBackoff({ minMs: 5, jitter: 0 })).toEqual({ minMs: 5, maxMs: 10_000, multiplier: 2, jitter: 0 });
    expect(resolveBackoff({ maxMs: undefined })).toEqual(DEFAULT_BACKOFF);
  });

  it("accepts the boundary values", () => {
    expect(resolveBackoff({ minMs: 0, maxMs: 0, multiplier: 1, jitter: 0 })).toEqual({ minMs: 0, maxMs: 0, multiplier: 1, jitter: 0 });
    expect(resolveBackoff({ minMs: 50, maxMs: 50, jitter: 1 })).toMatchObject({ minMs: 50, maxMs: 50, jitter: 1 });
  });

  describe("rejects invalid options with InvalidArgumentError naming the option and value", () => {
    const cases: [Partial<BackoffOptions>, keyof BackoffOptions, string][] = [
      [{ minMs: -1 }, "minMs", "-1"],
      [{ minMs: Number.NaN }, "minMs", "NaN"],
      [{ minMs: Infinity, maxMs: Infinity }, "minMs", "Infinity"],
      [{ minMs: 200, maxMs: 100 }, "maxMs", "100"],
      [{ minMs: 20_000 }, "maxMs", "10000"], // the default maxMs is below this minMs
      [{ maxMs: Infinity }, "maxMs", "Infinity"],
      [{ maxMs: Number.NaN }, "maxMs", "NaN"],
      [{ multiplier: 0.5 }, "multiplier", "0.5"],
      [{ multiplier: Infinity }, "multiplier", "Infinity"],
      [{ multiplier: Number.NaN }, "multiplier", "NaN"],
      [{ jitter: -0.1 }, "jitter", "-0.1"],
      [{ jitter: 1.5 }, "jitter", "1.5"],
      [{ jitter: Number.NaN }, "jitter", "NaN"],
    ];
    for (const [options, option, shown] of cases) {
      it(`${option}: ${shown}`, () => {
        const make = (): BackoffOptions => resolveBackoff(options);
        expect(make).toThrow(InvalidArgumentError);
        expect(make).toThrow(`${option}: ${shown}`);
      });
    }
  });
});

describe("backoffDelay", () => {
  it("grows by the multiplier from minMs (attempt is 0-based)", () => {
    const options = resolveBackoff({ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 });
    expect([0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options, noJitter))).toEqual([100, 200, 400, 800, 1600, 3200, 6400]);
    const triple = resolveBackoff({ minMs: 10, maxMs: 1e6, multiplier: 3, jitter: 0 });
    expect([0, 1, 2, 3].map((attempt) => backoffDelay(attempt, triple))).toEqual([10, 30, 90, 270]);
  });

  it("caps the base at maxMs", () => {
    const options = resolveBackoff({ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0 });
    expect(backoffDelay(6, options, noJitter)).toBe(6400);
    expect(backoffDelay(7, options, noJitter)).toBe(10_000); // 12_800 capped
    expect(backoffDelay(50, options, noJitter)).toBe(10_000);
  });

  it("stays at minMs with multiplier 1", () => {
    const options = resolveBackoff({ minMs: 250, multiplier: 1, jitter: 0 });
    expect(backoffDelay(0, options)).toBe(250);
    expect(backoffDelay(10_000, options)).toBe(250);
  });

  it("adds between 0 and jitter times the base", () => {
    const options = resolveBackoff({ minMs: 1000, maxMs: 10_000, multiplier: 2, jitter: 0.2 });
    expect(backoffDelay(0, options, () => 0)).toBe(1000);
    expect(backoffDelay(0, options, () => 0.5)).toBeCloseTo(1100, 9);
    expect(backoffDelay(0, options, () => 0.999)).toBeCloseTo(1199.8, 9);
    // random() < 1, but 1 + 0.2 * (1 - EPSILON) rounds to 1.2: the upper bound is inclusive.
    expect(backoffDelay(0, options, () => 1 - Number.EPSILON)).toBeLessThanOrEqual(1200);
    // At the cap the jitter still applies on top: up to maxMs * (1 + jitter).
    expect(backoffDelay(20, options, () => 0.5)).toBeCloseTo(11_000, 9);
    expect(backoffDelay(20, options, () => 1 - Number.EPSILON)).toBeLessThanOrEqual(12_000);
  });

  it("adds nothing with jitter 0, whatever random returns", () => {
    const options = resolveBackoff({ minMs: 100, jitter: 0 });
    expect(backoffDelay(2, options, () => 0.99)).toBe(400);
  });

  it("clamps a misbehaving random into [0, 1]", () => {
    const options = resolveBackoff({ minMs: 1000, jitter: 0.2 });
    expect(backoffDelay(0, options, () => Number.NaN)).toBe(1000);
    expect(backoffDelay(0, options, () => -3)).toBe(1000);
    expect(backoffDelay(0, options, () => 7)).toBeCloseTo(1200, 9);
  });

  it("uses Math.random by default and stays within bounds", () => {
    const options = resolveBackoff({ minMs: 100, maxMs: 1000, jitter: 0.5 });
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(1, options);
      expect(delay).toBeGreaterThanOrEqual(200);
      expect(delay).toBeLessThan(300);
    }
  });

  it("never returns NaN or Infinity for huge attempts", () => {
    const options = resolveBackoff({ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 });
    for (const attempt of [1023, 1024, 10_000, Number.MAX_SAFE_INTEGER]) {
      const delay = backoffDelay(attempt, options, () => 0.5);
      expect(Number.isFinite(delay)).toBe(true);
      expect(delay).toBeCloseTo(11_000, 9);
    }
    const zero = resolveBackoff({ minMs: 0, maxMs: 10_000, multiplier: 10, jitter: 0.2 });
    expect(backoffDelay(10_000, zero, () => 0.5)).toBe(0); // 0 * Infinity would be NaN
    const huge = resolveBackoff({ minMs: Number.MAX_VALUE, maxMs: Number.MAX_VALUE, multiplier: 2, jitter: 1 });
    expect(backoffDelay(10_000, huge, () => 0.5)).toBe(Number.MAX_VALUE); // the jitter would overflow
  });

  it("rejects an attempt that is not an integer >= 0", () => {
    for (const attempt of [-1, 1.5, Number.NaN, Infinity]) {
      const call = (): number => backoffDelay(attempt, DEFAULT_BACKOFF, noJitter);
      expect(call).toThrow(InvalidArgumentError);
      expect(call).toThrow(`attempt: ${String(attempt)}`);
    }
  });
});
