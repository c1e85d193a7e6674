import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  CallTimeoutError,
  pool,
  ProtocolError,
  supervise,
  WorkerExitedError,
  worker,
  type SupervisionTree,
  type TreeEvent,
} from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const SUPERVISED = fixture("supervised-worker.mjs");
const MISBEHAVING = fixture("misbehaving-child.mjs");
// Our Python v4 peer (written from the spec): calls one at a time, heartbeats only between them, like Python v4.
const PY_V4_PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const ONCE = fixture("fails-after-first-start.mjs");
const CRASH_ONCE = fixture("crash-once.mjs");
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const quiet = { onOutput: () => {} };
const fastBackoff = { minMs: 10, maxMs: 50, jitter: 0 };

const trees: SupervisionTree[] = [];
const workers = workerTracker();
const dirs: string[] = [];

function track(tree: SupervisionTree): SupervisionTree {
  trees.push(tree);
  return tree;
}

afterEach(async () => {
  await Promise.all(trees.splice(0).map((tree) => tree.stop()));
  await workers.stopAll();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

function nextEvent(tree: SupervisionTree, match: (event: TreeEvent) => boolean): Promise<TreeEvent> {
  return new Promise((resolve) => {
    const off = tree.subscribe((event) => {
      if (!match(event)) return;
      off();
      resolve(event);
    });
  });
}

describe("intensity is OTP's: every restart attempt counts", () => {
  it("a worker that crashes once and then fails every start makes its supervisor fail after intensity + 1 attempts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-once-"));
    dirs.push(dir);
    const tree = track(
      supervise({
        id: "root",
        intensity: 2,
        periodMs: 10_000,
        children: [worker({ id: "w", spawn: ONCE, env: { MF_MARKER: join(dir, "started") }, backoff: fastBackoff, ...quiet })],
      }),
    );
    const seen: TreeEvent[] = [];
    tree.subscribe((event) => seen.push(event));
    const failed = nextEvent(tree, (event) => event.path === "root" && event.to === "failed");
    await tree.start();
    const rootFailed = await failed;
    expect(rootFailed.reason).toMatch(/more than 2 restarts within 10000 ms/);
    // The crash, then two failed starts: three downs reported, three restarts counted, no fourth attempt.
    const downs = seen.filter((event) => event.path === "root/w" && event.to === "restarting");
    expect(downs.map((event) => event.from)).toEqual(["connected", "spawning", "spawning"]);
    const opens = seen.filter((event) => event.path === "root/w" && event.to === "spawning");
    expect(opens).toHaveLength(3); // the first start and two restarts
    expect(tree.state).toBe("failed");
    expect(tree.worker("w").state).toBe("stopped");
  });

  it("the supervisor applies the backoff and the worker does not restart by itself", async () => {
    const tree = track(
      supervise({
        id: "root",
        intensity: 5,
        children: [worker({ id: "w", spawn: SUPERVISED, backoff: { minMs: 300, maxMs: 300, jitter: 0 }, ...quiet })],
      }),
    );
    await tree.start();
    const w = tree.worker("w");
    const first = w.pid!;
    const down = nextEvent(tree, (event) => event.path === "root/w" && event.to === "restarting");
    const reopened = nextEvent(tree, (event) => event.path === "root/w" && event.to === "spawning");
    process.kill(first, "SIGKILL");
    const downAt = (await down).at;
    const reopenAt = (await reopened).at;
    expect(reopenAt - downAt).toBeGreaterThanOrEqual(250);
    expect(await tree.get("w").call.add(1, 2)).toBe(3);
    expect(w.pid).not.toBe(first);
  });
});

describe("busy is not dead", () => {
  it("a sequential v4 Python child in a call longer than the heartbeat budget finishes it, and is not restarted", async () => {
    // Heartbeats every 100 ms, 100 ms to answer, 3 misses: an idle silent worker would be declared hung in ~0.6 s.
    const w = workers.spawn(PY_V4_PEER, PYTHON, { args: ["child"], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 100, heartbeatMaxMisses: 3, autoRestart: true });
    await w.start();
    const pid = w.pid;
    const states: string[] = [];
    w.on("state", (change) => states.push(change.to));
    expect(await w.call.withOptions({ timeout: 10_000 }).sleep(2)).toBe(2);
    expect(states).toContain("degraded");
    expect(states).not.toContain("restarting");
    expect(w.restartCount).toBe(0);
    expect(w.pid).toBe(pid);
    await waitFor(() => w.state === "connected", 5000, "heartbeats answered again after the call");
  });

  it("an idle worker that stops answering heartbeats goes degraded, then is restarted after maxMisses", async () => {
    const w = workers.spawn(MISBEHAVING, "node", { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 100, heartbeatMaxMisses: 3, autoRestart: true });
    await w.start();
    const pid = w.pid!;
    const changes: string[] = [];
    const restarting = new Promise<string>((resolve) =>
      w.on("state", (change) => {
        changes.push(`${change.from}→${change.to}`);
        if (change.to === "restarting") resolve(change.reason);
      }),
    );
    expect(await w.call.deafen()).toBe(true);
    expect(await restarting).toBe("unresponsive: 3 heartbeats missed, no call in flight");
    expect(changes.slice(0, 2)).toEqual(["connected→degraded", "degraded→restarting"]);
    await waitFor(() => w.state === "connected" && w.pid !== pid, 5000, "a new worker");
    expect(isAlive(pid)).toBe(false);
  });

  it("a stopped (SIGSTOP) idle worker is hung: restarted at the first missed heartbeat", async () => {
    const w = workers.spawn(MATH, "node", { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 200, heartbeatMaxMisses: 100, autoRestart: true });
    await w.start();
    const pid = w.pid!;
    const restarting = new Promise<string>((resolve) => w.on("state", (change) => change.to === "restarting" && resolve(change.reason)));
    process.kill(pid, "SIGSTOP");
    expect(await restarting).toMatch(/stopped \(state T\)/);
    await waitFor(() => w.state === "connected" && w.pid !== pid, 5000, "a new worker");
    expect(isAlive(pid)).toBe(false);
    expect(await w.call.add(2, 2)).toBe(4);
  });

  it("a worker that blocks its event loop with a call in flight is busy, not hung: the call completes", async () => {
    const w = workers.spawn(MISBEHAVING, "node", { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 100, heartbeatMaxMisses: 2, autoRestart: true });
    await w.start();
    const pid = w.pid!;
    const states: string[] = [];
    w.on("state", (change) => states.push(change.to));
    // Blocks 1.5 s; the call waits 5 s: busy, never restarted.
    expect(await w.call.block(1500)).toBe(1500);
    expect(states).not.toContain("restarting");
    expect(w.pid).toBe(pid);
  });
});

describe("no call lost in the crash window", () => {
  it("with idempotent: true in the spec, a call made right after kill -9 succeeds on the restarted worker", async () => {
    const tree = track(supervise({ id: "root", children: [worker({ id: "w", spawn: SUPERVISED, idempotent: true, backoff: fastBackoff, ...quiet })] }));
    await tree.start();
    const first = tree.worker("w").pid!;
    process.kill(first, "SIGKILL");
    const pid = await tree.get("w").call.pid();
    expect(pid).not.toBe(first);
    expect(pid).toBe(tree.worker("w").pid);
  });

  it("calls in flight when a worker dies fail with WorkerExitedError; calls made after it was seen wait for the restart", async () => {
    const tree = track(supervise({ id: "root", children: [worker({ id: "w", spawn: SUPERVISED, backoff: fastBackoff, ...quiet })] }));
    await tree.start();
    const w = tree.worker("w");
    const inFlight = tree.get("w").call.sleep(5000);
    await waitFor(() => w.pendingCalls > 0, 1000, "the call to be in flight");
    const down = new Promise<void>((resolve) => w.on("state", (change) => change.to === "restarting" && resolve()));
    process.kill(w.pid!, "SIGKILL");
    const error = await rejectionOf(inFlight);
    expect(error).toBeInstanceOf(WorkerExitedError);
    expect(error.signal).toBe("SIGKILL");
    await down;
    expect(await tree.get("w").call.add(2, 3)).toBe(5);
  });

  it("a pool routes only to live members and retries idempotent calls on another member", async () => {
    const tree = track(
      supervise({
        id: "root",
        children: [pool({ id: "p", spawn: SUPERVISED, size: 2, backoff: { minMs: 2000, maxMs: 2000, jitter: 0 }, ...quiet })],
      }),
    );
    await tree.start();
    const [a, b] = tree.pool("p").workers;
    const deadPid = a!.pid!;
    const livePid = b!.pid!;
    // Idempotent calls in flight on the member that dies are sent again to the other one.
    const calls = Array.from({ length: 6 }, () => tree.get("p").call.withOptions({ idempotent: true }).slowPid(300));
    await waitFor(() => a!.pendingCalls > 0, 1000, "calls in flight on the first member");
    process.kill(deadPid, "SIGKILL");
    const pids = await Promise.all(calls);
    expect(pids.filter((pid) => pid === deadPid)).toHaveLength(0);
    // While the dead member waits out its backoff, every call goes to the live one.
    await waitFor(() => a!.state === "restarting", 2000, "the first member to be down");
    const later = await Promise.all(Array.from({ length: 10 }, () => tree.get("p").call.pid()));
    expect(new Set(later)).toEqual(new Set([livePid]));
  });
});

describe("failures are noticed at once", () => {
  it("a spawned child that closes its socket but stays alive is seen as down without heartbeats", async () => {
    const w = workers.spawn(MISBEHAVING, "node", { heartbeatIntervalMs: 0, autoRestart: true, backoff: fastBackoff });
    await w.start();
    const pid = w.pid!;
    const down = new Promise<string>((resolve) => w.on("state", (change) => change.to === "restarting" && resolve(change.reason)));
    expect(await w.call.closeSocket()).toBe(true);
    expect(await down).toBe("disconnected");
    await waitFor(() => w.state === "connected" && w.pid !== pid, 5000, "a new worker");
    expect(isAlive(pid)).toBe(false);
  });

  it("a reply with a readable id but an invalid frame rejects that call at once with ProtocolError", async () => {
    const w = workers.spawn(MISBEHAVING, "node");
    await w.start();
    const started = Date.now();
    const error = await rejectionOf(w.call.withOptions({ timeout: 20_000 }).garbage());
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.message).toMatch(/invalid reply to 'garbage'/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await w.call.add(1, 1)).toBe(2);
  });

  it("a heartbeat-typed message carrying a call's id does not settle the call", async () => {
    const w = workers.spawn(MISBEHAVING, "node");
    await w.start();
    expect(await w.call.heartbeatThenAnswer()).toBe(42);
    expect(w.stats.unmatchedReplies).toBe(1);
  });

  it("a timeout names the namespace only when it is not the default one", async () => {
    const w = workers.spawn(MISBEHAVING, "node");
    await w.start();
    const plain = await rejectionOf(w.call.withOptions({ timeout: 200 }).block(600));
    expect(plain).toBeInstanceOf(CallTimeoutError);
    expect(plain.message).not.toMatch(/namespace/);
    const other = await rejectionOf(w.call.withOptions({ timeout: 200, namespace: "elsewhere" }).add(1, 2));
    expect(other.message).toMatch(/namespace 'elsewhere'/);
  });
});

describe("races found by review", () => {
  function tempMarker(): string {
    const dir = mkdtempSync(join(tmpdir(), "mf-marker-"));
    dirs.push(dir);
    return join(dir, "started");
  }

  it("a restart order that comes while the old worker is still closing is kept: the worker comes back", async () => {
    // closeSocket: the child stays alive, so the graceful close takes its shutdown timeout.
    const tree = track(
      supervise({
        id: "root",
        children: [
          worker({ id: "w", spawn: MISBEHAVING, heartbeatIntervalMs: 0, shutdownTimeoutMs: 500, backoff: fastBackoff, ...quiet }),
          worker({ id: "s", spawn: SUPERVISED, backoff: fastBackoff, ...quiet }),
        ],
      }),
    );
    await tree.start();
    const w = tree.worker("w");
    const first = w.pid;
    expect(await tree.get("w").call.closeSocket()).toBe(true);
    await waitFor(() => w.state === "connected" && w.pid !== first, 10_000, "w back");
    const s = tree.worker("s");
    const sPid = s.pid!;
    process.kill(sPid, "SIGKILL");
    await waitFor(() => s.state === "connected" && s.pid !== sPid, 10_000, "s back: later restarts are not blocked");
  });

  it("a pool member removed by resize() while its restart waits stays stopped", async () => {
    const tree = track(supervise({ id: "root", children: [pool({ id: "p", spawn: SUPERVISED, size: 2, backoff: { minMs: 500, maxMs: 500, jitter: 0 }, ...quiet })] }));
    await tree.start();
    const p = tree.pool("p");
    const removed = p.workers[1]!;
    const down = new Promise<void>((resolve) => removed.on("state", (change) => change.to === "restarting" && resolve()));
    process.kill(removed.pid!, "SIGKILL");
    await down;
    await p.resize(1);
    const revived = new Promise<string>((resolve) => removed.on("state", (change) => change.to === "spawning" && resolve(change.reason)));
    const outcome = await Promise.race([revived, new Promise<string>((resolve) => setTimeout(() => resolve("stayed"), 1500))]);
    expect(outcome).toBe("stayed");
    expect(removed.state).toBe("stopped");
  });

  it("one_for_all: a child that crashes while a later sibling is still starting is restarted once the start is done", async () => {
    const tree = track(
      supervise({
        id: "root",
        strategy: "one_for_all",
        children: [
          worker({ id: "a", spawn: CRASH_ONCE, env: { MF_MARKER: tempMarker() }, backoff: fastBackoff, ...quiet }),
          worker({ id: "b", spawn: CRASH_ONCE, env: { MF_START_DELAY_MS: "800" }, backoff: fastBackoff, ...quiet }),
        ],
      }),
    );
    await tree.start();
    await waitFor(() => tree.worker("a").restartCount === 1 && tree.worker("a").state === "connected", 10_000, "a restarted");
    await waitFor(() => tree.worker("b").state === "connected", 10_000, "b back");
    expect(tree.state).toBe("running");
  });

  it("one_for_all: calls to a sibling held for the restart wait for it instead of failing", async () => {
    const tree = track(
      supervise({
        id: "root",
        strategy: "one_for_all",
        children: [
          worker({ id: "a", spawn: SUPERVISED, backoff: { minMs: 500, maxMs: 500, jitter: 0 }, ...quiet }),
          worker({ id: "b", spawn: SUPERVISED, backoff: fastBackoff, ...quiet }),
        ],
      }),
    );
    await tree.start();
    const b = tree.worker("b");
    const held = new Promise<void>((resolve) => b.on("state", (change) => change.to === "restarting" && resolve()));
    process.kill(tree.worker("a").pid!, "SIGKILL");
    await held;
    const bPid = b.pid;
    const pid = await tree.get("b").call.pid();
    expect(pid).not.toBe(bPid);
  });

  it("restart() of a supervised worker restarts it once, and is not counted as a down", async () => {
    const tree = track(supervise({ id: "root", intensity: 0, children: [worker({ id: "w", spawn: SUPERVISED, backoff: fastBackoff, ...quiet })] }));
    await tree.start();
    const w = tree.worker("w");
    await w.restart("by hand");
    expect(w.restartCount).toBe(1);
    expect(tree.state).toBe("running"); // intensity 0: a counted down would have failed the tree
    expect(await tree.get("w").call.add(1, 1)).toBe(2);
  });

  it("an ordered restart lets the old worker finish the calls it has", async () => {
    const w = workers.spawn(SUPERVISED, "node");
    await w.start();
    const first = w.pid;
    const call = w.call.slowPid(300);
    await waitFor(() => w.pendingCalls > 0, 1000, "the call in flight");
    await w.restart("rolling update");
    expect(await call).toBe(first);
    expect(w.pid).not.toBe(first);
  });

  it("stop() of a failed worker returns only once its process is gone", async () => {
    const w = workers.spawn(MISBEHAVING, "node", { heartbeatIntervalMs: 0, shutdownTimeoutMs: 300, killTimeoutMs: 300 });
    await w.start();
    const pid = w.pid!;
    const failed = new Promise<void>((resolve) => w.on("state", (change) => change.to === "failed" && resolve()));
    await w.call.closeSocket();
    await failed;
    await w.stop();
    expect(isAlive(pid)).toBe(false);
  });

  it("a pool grown while it starts starts its new members too", async () => {
    const tree = track(supervise({ id: "root", children: [pool({ id: "p", spawn: CRASH_ONCE, size: 1, maxChildren: 3, env: { MF_START_DELAY_MS: "300" }, ...quiet })] }));
    const started = tree.start();
    await waitFor(() => tree.state === "starting", 1000, "starting");
    await tree.pool("p").resize(3);
    await started;
    await waitFor(() => tree.pool("p").workers.every((member) => member.state === "connected"), 10_000, "all members up");
  });
});
