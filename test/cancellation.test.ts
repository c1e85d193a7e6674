import { spawnSync } from "node:child_process";
import { getEventListeners } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AbortError, CallTimeoutError, type ParentWorker } from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

/**
 * Cancellation (issue 15, docs/api.md "Cancellation", docs/wire.md "Cancellation"): a call's
 * `signal` rejects it at once with an AbortError and sends the worker a `cancel`; our TS and
 * Python children abort the handler's `this.call.signal` / set `self.call.cancelled`, and drop a
 * cancelled call that had not started; a v4 peer ignores `cancel`. Real processes throughout.
 */

const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_ENV = { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":") };
const PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));

const workers = workerTracker();
afterEach(() => workers.stopAll());
afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

interface Flavour {
  name: string;
  spawn(options?: { serial?: boolean; circuit?: boolean }): ParentWorker;
  statsFn: string;
}

const FLAVOURS: Flavour[] = [
  {
    name: "TS child",
    statsFn: "workerStats",
    spawn: ({ serial = false, circuit = false } = {}) =>
      workers.spawn(fixture("cancel-worker.mjs"), "node", {
        env: serial ? { MF_SERIAL: "1" } : {},
        ...(circuit ? { circuitBreaker: { consecutiveFailures: 2, minRequests: 100 } } : {}),
      }),
  },
  {
    name: "Python library child",
    statsFn: "worker_stats",
    spawn: ({ serial = false, circuit = false } = {}) =>
      workers.spawn(fixture("python-lib/cancel_worker.py"), PYTHON, {
        env: { ...PY_ENV, ...(serial ? { MF_SERIAL: "1" } : {}) },
        ...(circuit ? { circuitBreaker: { consecutiveFailures: 2, minRequests: 100 } } : {}),
      }),
  },
];

interface ChildStats {
  callsReceived: number;
  callsCancelled: number;
  callsCancelledQueued: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Aborts `ac` and returns the call's rejection and how long it took to come. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary error fields
async function abortAndTime(ac: AbortController, call: Promise<unknown>, reason?: unknown): Promise<{ error: any; ms: number }> {
  const caught = rejectionOf(call);
  const started = performance.now();
  ac.abort(reason);
  const error = await caught;
  return { error, ms: performance.now() - started };
}

for (const flavour of FLAVOURS) {
  describe(`cancellation, ${flavour.name}`, () => {
    const childStats = async (worker: ParentWorker) => (await worker.callFunction(flavour.statsFn)) as ChildStats;

    it("an already-aborted signal rejects before anything is sent", async () => {
      const worker = flavour.spawn();
      await worker.start();
      const sent = worker.stats.callsSent;
      const ac = new AbortController();
      const reason = new Error("not wanted");
      ac.abort(reason);
      const error = await rejectionOf(worker.invoke("tick", [1000], { signal: ac.signal }));
      expect(error).toBeInstanceOf(AbortError);
      expect(error.name).toBe("AbortError");
      expect(error.cause).toBe(reason);
      expect(worker.stats.callsSent).toBe(sent);
      expect((await childStats(worker)).callsReceived).toBe(1); // the stats call itself
    });

    it("a call aborted while buffered (worker still starting) is dropped, never sent", async () => {
      const worker = flavour.spawn();
      const starting = worker.start();
      const ac = new AbortController();
      const call = worker.handle().call.withOptions({ signal: ac.signal }).tick(1000);
      expect(worker.bufferedCalls).toBe(1);
      const { error, ms } = await abortAndTime(ac, call);
      expect(error).toBeInstanceOf(AbortError);
      expect(ms).toBeLessThan(50);
      expect(worker.bufferedCalls).toBe(0);
      await starting;
      expect(worker.stats.cancelsSent).toBe(0);
      const stats = await childStats(worker);
      expect(stats.callsReceived).toBe(1); // only the stats call
    });

    it("an abort during the run rejects at once and stops the handler", async () => {
      const worker = flavour.spawn();
      await worker.start();
      const ac = new AbortController();
      const call = worker.callFunction("tick", [20_000], undefined, undefined, undefined, { signal: ac.signal });
      await sleep(150);
      const { error, ms } = await abortAndTime(ac, call, "user gave up");
      expect(error).toBeInstanceOf(AbortError);
      expect(error.cause).toBe("user gave up");
      expect(ms).toBeLessThan(50);
      expect(worker.stats.cancelsSent).toBe(1);
      // The handler sees the cancellation: its counter stops growing.
      let aborted: unknown[] = [];
      const deadline = Date.now() + 3000;
      while (aborted.length === 0 && Date.now() < deadline) {
        aborted = (await worker.callFunction("aborted")) as unknown[];
        if (aborted.length === 0) await sleep(20);
      }
      expect(aborted).toHaveLength(1);
      const first = (await worker.callFunction("count")) as number;
      await sleep(200);
      const second = (await worker.callFunction("count")) as number;
      expect(second).toBe(first);
      expect(first).toBeGreaterThan(3);
      const stats = await childStats(worker);
      expect(stats.callsCancelled).toBe(1);
      // The handler's own reply came after the cancel: dropped and counted.
      await waitFor(() => worker.stats.unmatchedReplies >= 1, 3000, "the late reply counted");
      expect(worker.metrics.counts.cancelled).toBe(1);
    });

    it("a cancelled call still waiting for a slot in the child never runs", async () => {
      const worker = flavour.spawn({ serial: true });
      await worker.start();
      const first = new AbortController();
      const second = new AbortController();
      const running = worker.invoke("tick", [20_000], { signal: first.signal });
      await sleep(100);
      const queued = worker.invoke("tick", [20_000], { signal: second.signal });
      await sleep(100);
      expect((await abortAndTime(second, queued)).error).toBeInstanceOf(AbortError);
      await sleep(100);
      expect((await abortAndTime(first, running)).error).toBeInstanceOf(AbortError);
      // Only the running one saw its cancellation; the queued one never started.
      const deadline = Date.now() + 3000;
      let aborted: unknown[] = [];
      while (Date.now() < deadline) {
        aborted = (await worker.callFunction("aborted")) as unknown[];
        if (aborted.length > 0) break;
        await sleep(20);
      }
      await sleep(100);
      aborted = (await worker.callFunction("aborted")) as unknown[];
      expect(aborted).toHaveLength(1);
      const stats = await childStats(worker);
      expect(stats.callsCancelled).toBe(2);
      expect(stats.callsCancelledQueued).toBe(1);
    });

    it("an abort after the reply has no effect", async () => {
      const worker = flavour.spawn();
      await worker.start();
      const ac = new AbortController();
      expect(await worker.invoke("add", [1, 2], { signal: ac.signal })).toBe(3);
      ac.abort();
      await sleep(50);
      expect(worker.stats.cancelsSent).toBe(0);
      expect(worker.metrics.counts.cancelled).toBe(0);
      expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
    });

    it("a call timeout sends cancel: the handler sees it", async () => {
      const worker = flavour.spawn();
      await worker.start();
      const error = await rejectionOf(worker.handle().call.withOptions({ timeout: 200 }).tick(20_000));
      expect(error).toBeInstanceOf(CallTimeoutError);
      expect(worker.stats.cancelsSent).toBe(1);
      const deadline = Date.now() + 3000;
      let aborted: unknown[] = [];
      while (aborted.length === 0 && Date.now() < deadline) {
        aborted = (await worker.callFunction("aborted")) as unknown[];
        if (aborted.length === 0) await sleep(20);
      }
      expect(aborted).toHaveLength(1);
    });

    it("cancelled calls do not count toward the circuit breaker", async () => {
      const worker = flavour.spawn({ circuit: true });
      await worker.start();
      for (let i = 0; i < 5; i++) {
        const ac = new AbortController();
        const call = worker.invoke("tick", [20_000], { signal: ac.signal });
        await sleep(20);
        expect((await abortAndTime(ac, call)).error).toBeInstanceOf(AbortError);
      }
      expect(worker.metrics.counts.cancelled).toBe(5);
      expect(worker.metrics.counts.timeout).toBe(0);
      expect(worker.state).toBe("connected");
      expect(worker.snapshot().calls.failed).toBe(0);
      expect(await worker.invoke("add", [2, 2])).toBe(4);
    });
  });
}

describe("cancellation, v4 peer and listeners", () => {
  it("a v4 peer ignores cancel: the call still rejects at once and the peer keeps serving", async () => {
    const worker = workers.spawn(PEER, PYTHON, { args: ["child"] });
    await worker.start();
    const ac = new AbortController();
    const call = worker.invoke("sleep", [0.6], { signal: ac.signal });
    await sleep(100);
    const { error, ms } = await abortAndTime(ac, call);
    expect(error).toBeInstanceOf(AbortError);
    expect(ms).toBeLessThan(50);
    expect(worker.stats.cancelsSent).toBe(1);
    // The peer finishes the sleep (it ignored the cancel), then answers the next call.
    expect(await worker.invoke("add", [2, 3])).toBe(5);
    expect(worker.stats.unmatchedReplies).toBe(1); // the sleep's late reply, dropped
    expect(worker.state).toBe("connected");
  });

  it("a signal shared by 1000 settled calls keeps no listener", async () => {
    const worker = workers.spawn(fixture("cancel-worker.mjs"));
    await worker.start();
    const ac = new AbortController();
    const add = worker.handle().call.withOptions({ signal: ac.signal });
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => add.add(i, 1)));
    expect(results[999]).toBe(1000);
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
    // One in flight holds exactly one listener, removed when it settles.
    const slow = worker.invoke("tick", [50], { signal: ac.signal });
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(1);
    await slow;
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });
});

describe("the lean child entry point", () => {
  it("multifrost/child loads no XState, parent, supervision, registry or OpenTelemetry code", () => {
    const dir = mkdtempSync(join(tmpdir(), "multifrost-lean-"));
    try {
      const log = join(dir, "modules.log");
      const hooks = fixture("module-log-hooks.mjs");
      const run = spawnSync(process.execPath, ["--import", hooks, "--input-type=module", "-e", 'const m = await import("multifrost/child"); if (typeof m.ChildWorker !== "function") process.exit(3);'], {
        cwd: ROOT,
        env: { ...process.env, MF_MODULE_LOG: log },
        encoding: "utf8",
      });
      expect(run.status, run.stderr).toBe(0);
      const loaded = readFileSync(log, "utf8").split("\n").filter(Boolean);
      expect(loaded.some((url) => url.includes("/dist/child-entry.js"))).toBe(true);
      // The entry is a bundle (scripts/build-child.mjs): ChildWorker's code is in it; errors.js is shared.
      expect(loaded.some((url) => url.includes("/dist/errors.js"))).toBe(true);
      const dist = pathToFileURL(join(ROOT, "dist")).href + "/";
      const unwanted = loaded.filter((url) =>
        /node_modules\/(xstate|@opentelemetry|proper-lockfile|pidusage|yaml|commander|log-update)\//.test(url) ||
        (url.startsWith(dist) && /^(parent|supervision|registry|machines|dashboard|cli)\/|^index\.js$/.test(url.slice(dist.length))),
      );
      expect(unwanted).toEqual([]);
      // The whole package does load XState (so the check above can fail).
      rmSync(log, { force: true });
      const full = spawnSync(process.execPath, ["--import", hooks, "--input-type=module", "-e", 'await import("multifrost")'], {
        cwd: ROOT,
        env: { ...process.env, MF_MODULE_LOG: log },
        encoding: "utf8",
      });
      expect(full.status, full.stderr).toBe(0);
      expect(readFileSync(log, "utf8")).toMatch(/node_modules\/xstate\//);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
