import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ParentWorker } from "../src/index.js";
import { fixture, workerTracker } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

// Busy ≠ dead with the default heartbeat settings (every 5 s, 3 s to answer, 3 misses), the
// figures issue 9 promises. These take their real time (≈ 26 s and ≈ 8 s), so they have a file of
// their own and run beside the rest.

// Our Python v4 peer (written from the spec): calls one at a time, heartbeats only between them, like Python v4.
const PY_V4_PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const MATH = fixture("math-worker.mjs");
const PY_LIB_WORKER = fixture("python-lib/interop_worker.py");
const PY_LIB_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const workers = workerTracker();

afterEach(async () => {
  await workers.stopAll();
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

describe("default heartbeat settings", () => {
  it("a sequential v4 child finishes a 26 s call whose timeout is 60 s, and is never restarted", { timeout: 60_000 }, async () => {
    const w: ParentWorker = workers.spawn(PY_V4_PEER, PYTHON, { args: ["child"], autoRestart: true });
    await w.start();
    const pid = w.pid;
    const states: string[] = [];
    w.on("state", (change) => states.push(`${change.to} (${change.reason})`));
    expect(await w.call.withOptions({ timeout: 60_000 }).sleep(26)).toBe(26);
    expect(states.some((state) => state.startsWith("degraded"))).toBe(true);
    expect(states.filter((state) => state.startsWith("restarting"))).toEqual([]);
    expect(w.pid).toBe(pid);
    expect(w.restartCount).toBe(0);
  });

  it("our Python library finishes a 30 s CPU-bound call: its I/O thread answers every heartbeat meanwhile", { timeout: 60_000 }, async () => {
    const w = workers.spawn(PY_LIB_WORKER, PYTHON, { env: { PYTHONPATH: PY_LIB_SRC }, autoRestart: true });
    await w.start();
    const states: string[] = [];
    w.on("state", (change) => states.push(`${change.to} (${change.reason})`));
    expect(await w.call.withOptions({ timeout: 60_000 }).spin(30_000)).toBeDefined();
    expect(states.filter((state) => state.startsWith("restarting"))).toEqual([]);
    expect(w.lastHeartbeatRttMs).toBeLessThan(3000); // answered during the call, not only after it
    expect(w.restartCount).toBe(0);
  });

  it("a SIGSTOPped idle worker is restarted within 20 s", { timeout: 30_000 }, async () => {
    const w = workers.spawn(MATH, "node", { autoRestart: true });
    await w.start();
    const pid = w.pid!;
    const stoppedAt = Date.now();
    process.kill(pid, "SIGSTOP");
    await waitFor(() => w.state === "connected" && w.pid !== pid, 25_000, "the restarted worker");
    expect(Date.now() - stoppedAt).toBeLessThan(20_000);
    expect(isAlive(pid)).toBe(false);
    expect(await w.call.add(1, 2)).toBe(3);
  });
});
