import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ParentWorker } from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import { serviceHarness } from "./helpers/services.js";

// Issue 10: one process used to hold at most 341 connect-mode parents (three zeromq sockets each
// against the context's 1,023). Now: a DEALER and its TCP connection, nothing more.
const SERVICE = fixture("supervised-worker.mjs");
const harness = serviceHarness("mf-scale-");
const N = 5000;

describe("connect mode at scale", () => {
  it(`one process holds ${N} connections to a service, 2 descriptors each, and a newcomer is still served`, { timeout: 120_000 }, async () => {
    await harness.startService("scale", process.execPath, [SERVICE], { MF_SERVICE_ID: "scale" });
    const fdsBefore = readdirSync("/proc/self/fd").length;
    const workers: ParentWorker[] = [];
    try {
      for (let i = 0; i < N; i += 250) {
        const batch = Array.from({ length: 250 }, () => ParentWorker.forService("scale", { registry: harness.registry, onOutput: () => {} }));
        workers.push(...batch);
        await Promise.all(batch.map((worker) => worker.start()));
      }
      expect(workers.every((worker) => worker.state === "connected")).toBe(true);
      expect(readdirSync("/proc/self/fd").length - fdsBefore).toBeLessThanOrEqual(2 * N + 50);
      const sample = await Promise.all(workers.filter((_, i) => i % 100 === 0).map((worker) => worker.call.add(1, 1)));
      expect(sample.every((value) => value === 2)).toBe(true);
      const newcomer = await harness.connect("scale");
      await newcomer.start();
      expect(await newcomer.call.add(2, 2)).toBe(4);
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
    }
  });
});
