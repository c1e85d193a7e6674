import { describe, expect, it } from "vitest";
import { RestartIntensity } from "../src/core/restart-intensity.js";
import { InvalidArgumentError } from "../src/errors.js";

/** A clock the test moves by hand. */
function fakeClock(start = 0): { now: () => number; set(t: number): void } {
  let t = start;
  return { now: () => t, set: (next) => void (t = next) };
}

describe("RestartIntensity", () => {
  it("with intensity 0 the first restart exceeds the limit", () => {
    const limit = new RestartIntensity(0, 5000, fakeClock().now);
    expect(limit.count).toBe(0);
    expect(limit.record()).toBe(true);
    expect(limit.count).toBe(1);
  });

  it("allows `intensity` restarts within the period and refuses one more", () => {
    const clock = fakeClock();
    const limit = new RestartIntensity(3, 1000, clock.now);
    expect(limit.record()).toBe(false);
    clock.set(300);
    expect(limit.record()).toBe(false);
    clock.set(600);
    expect(limit.record()).toBe(false);
    expect(limit.count).toBe(3);
    clock.set(999);
    expect(limit.record()).toBe(true);
    expect(limit.count).toBe(4);
  });

  it("forgets restarts once they are periodMs old", () => {
    const clock = fakeClock();
    const limit = new RestartIntensity(1, 1000, clock.now);
    expect(limit.record()).toBe(false);
    clock.set(999);
    expect(limit.count).toBe(1);
    clock.set(1000);
    expect(limit.count).toBe(0);
    expect(limit.record()).toBe(false); // the restart at 0 no longer counts
    clock.set(1500);
    expect(limit.record()).toBe(true); // 1000 and 1500
  });

  it("slides: steady restarts slower than intensity per period never exceed", () => {
    const clock = fakeClock();
    const limit = new RestartIntensity(2, 1000, clock.now);
    for (let t = 0; t < 20_000; t += 500) {
      clock.set(t);
      expect(limit.record()).toBe(false); // at most 2 within any 1000 ms: t - 500 and t
    }
    clock.set(19_750);
    expect(limit.record()).toBe(true); // 19_000, 19_500 and 19_750 all within 1000 ms
  });

  it("recovers after a burst once the period has passed", () => {
    const clock = fakeClock();
    const limit = new RestartIntensity(2, 1000, clock.now);
    expect([limit.record(), limit.record(), limit.record()]).toEqual([false, false, true]);
    clock.set(2000);
    expect(limit.count).toBe(0);
    expect(limit.record()).toBe(false);
  });

  it("keeps at most intensity + 1 timestamps, and stays exceeded while the burst goes on", () => {
    const clock = fakeClock();
    const limit = new RestartIntensity(2, 1000, clock.now);
    const answers: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      clock.set(i);
      answers.push(limit.record());
    }
    expect(answers).toEqual([false, false, true, true, true, true, true, true, true, true]);
    expect(limit.count).toBe(3);
    // Only the last three (7, 8, 9) are kept, so they expire at 1007, 1008, 1009.
    clock.set(1008);
    expect(limit.count).toBe(1);
  });

  it("reset() forgets every restart", () => {
    const limit = new RestartIntensity(1, 1000, fakeClock().now);
    limit.record();
    expect(limit.record()).toBe(true);
    limit.reset();
    expect(limit.count).toBe(0);
    expect(limit.record()).toBe(false);
  });

  it("uses performance.now by default", () => {
    const limit = new RestartIntensity(1, 60_000);
    expect(limit.record()).toBe(false);
    expect(limit.record()).toBe(true);
  });

  it("rejects an intensity that is not an integer >= 0", () => {
    for (const intensity of [-1, 1.5, Number.NaN, Infinity]) {
      const make = (): RestartIntensity => new RestartIntensity(intensity, 1000);
      expect(make).toThrow(InvalidArgumentError);
      expect(make).toThrow(`intensity: ${String(intensity)}`);
    }
  });

  it("rejects a periodMs that is not a finite number > 0", () => {
    for (const periodMs of [0, -5, Number.NaN, Infinity]) {
      const make = (): RestartIntensity => new RestartIntensity(3, periodMs);
      expect(make).toThrow(InvalidArgumentError);
      expect(make).toThrow(`periodMs: ${String(periodMs)}`);
    }
  });
});
