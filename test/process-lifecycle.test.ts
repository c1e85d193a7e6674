/**
 * The life of a worker process as the parent sees it: start (and how it fails), death with
 * calls pending, graceful stop and its escalation (shutdown → SIGTERM → SIGKILL), restarts of
 * the same ParentWorker, and wrappers whose real worker is a grandchild.
 */
import { once } from "node:events";
import { readFileSync, readdirSync } from "node:fs";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  ParentWorker,
  WorkerExitedError,
  WorkerNotRunningError,
  WorkerStartError,
  type StateChange,
} from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");

interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** Stops a worker that ignores shutdown and SIGTERM: it must end by SIGKILL after the grace periods, within 5 s. */
async function stopExpectingSigkill(worker: ParentWorker): Promise<void> {
  const exit = once(worker, "exit");
  const started = Date.now();
  await worker.stop();
  const elapsed = Date.now() - started;
  expect(elapsed).toBeGreaterThanOrEqual(750);
  expect(elapsed).toBeLessThan(5000);
  expect(((await exit) as [ExitInfo])[0]).toEqual({ code: null, signal: "SIGKILL" });
}

interface GroupMember {
  pid: number;
  state: string;
  ppid: number;
}

/** Every process whose process group is `pgid`, zombies included, read from /proc. */
function groupMembers(pgid: number): GroupMember[] {
  const members: GroupMember[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid) members.push({ pid: Number(entry), state: state!, ppid: Number(ppid) });
  }
  return members;
}

/** Workers a test spawned; afterEach stops every one of them, pass or fail. */
const tracked = workerTracker();
const spawnWorker = tracked.spawn;
afterEach(() => tracked.stopAll());

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by process-lifecycle tests");
});

describe("start()", () => {
  it("walks idle → spawning → connected, spawning one process for concurrent start() calls", async () => {
    const worker = spawnWorker(MATH);
    const changes: StateChange[] = [];
    worker.on("state", (change) => changes.push(change));
    expect(worker.state).toBe("idle");
    const first = worker.start();
    const second = worker.start();
    expect(worker.state).toBe("spawning");
    expect(second).toBe(first);
    await first;
    expect(worker.state).toBe("connected");
    expect(typeof worker.lastHeartbeatRttMs).toBe("number");
    expect(descendants()).toEqual([worker.pid]);
    await worker.start(); // already connected: a no-op
    expect(descendants()).toEqual([worker.pid]);
    expect(changes.map(({ from, to }) => `${from}→${to}`)).toEqual(["idle→spawning", "spawning→connected"]);
  });

  it("calls made while start() is in progress are delivered once the child connects", async () => {
    const worker = spawnWorker(MATH);
    const starting = worker.start();
    expect(worker.state).toBe("spawning");
    // Made before the parent's socket has finished binding; the DEALER must queue them.
    const early = Promise.allSettled([worker.call.add(1, 2), worker.call.pid(), worker.ping()]);
    await starting;
    const [sum, pid, rtt] = await early;
    expect(sum).toEqual({ status: "fulfilled", value: 3 });
    expect(pid).toEqual({ status: "fulfilled", value: worker.pid });
    expect(rtt.status).toBe("fulfilled");
  });

  it("fails fast with WorkerStartError naming a missing executable", async () => {
    const exe = "/nonexistent/mf-no-such-interpreter";
    const worker = spawnWorker(MATH, exe);
    const started = Date.now();
    const error = await rejectionOf(worker.start());
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.code).toBe("ERR_WORKER_START");
    expect(error.message).toContain(exe);
    expect(error.message).toMatch(/ENOENT/);
    expect(worker.state).toBe("failed");
    expect(descendants()).toEqual([]);
    expect(await rejectionOf(worker.call.add(1, 2))).toBeInstanceOf(WorkerNotRunningError);
  });

  it("reports a child that exits before it is ready, with its exit code and stderr", async () => {
    const lines: string[] = [];
    const worker = spawnWorker(fixture("exit-early.mjs"), "node", { onOutput: (_stream, line) => lines.push(line) });
    const started = Date.now();
    const error = await rejectionOf(worker.start());
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toContain("exited with code 2");
    expect(error.message).toContain("exit-early: config file missing");
    expect(error.cause).toBeInstanceOf(WorkerExitedError);
    expect(error.cause.exitCode).toBe(2);
    expect(error.cause.stderrTail).toEqual(["exit-early: config file missing", "exit-early: last words without newline"]);
    expect(error.message).toContain("exit-early: last words without newline"); // a last line without "\n" is kept
    expect(lines).toEqual(["exit-early: config file missing", "exit-early: last words without newline"]);
    expect(worker.state).toBe("failed");
  });

  it("reports a script node cannot load with node's own error", async () => {
    const worker = spawnWorker(fixture("no-such-script.mjs"));
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toContain("exited with code 1");
    expect(error.message).toMatch(/Cannot find module/);
  });

  it("gives up on a child that never answers a heartbeat, and leaves no process behind", async () => {
    const worker = spawnWorker(fixture("never-connects.mjs"), "node", { startupTimeout: 1000 });
    const started = Date.now();
    const error = await rejectionOf(worker.start());
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toMatch(/heartbeat/);
    expect(error.message).toContain("1000ms");
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5000);
    expect(worker.state).toBe("failed");
    const pid = worker.pid!;
    expect(pid).toBeGreaterThan(0);
    expect(isAlive(pid)).toBe(false);
    expect(descendants()).toEqual([]);
  });
});

describe("child death with calls pending", () => {
  async function fivePendingSleeps(worker: ParentWorker): Promise<Array<Promise<{ error: any; at: number }>>> {
    const pending = Array.from({ length: 5 }, () =>
      worker.call.sleep(10_000).then(
        (value) => ({ error: new Error(`resolved with ${String(value)}`), at: Date.now() }),
        (error: unknown) => ({ error, at: Date.now() }),
      ),
    );
    expect(await worker.call.add(1, 1)).toBe(2); // the sleeps have reached the child
    expect(worker.pendingCalls).toBe(5);
    return pending;
  }

  it("rejects every pending call at once with WorkerExitedError when the child exits", async () => {
    const worker = spawnWorker(MATH, "node", { defaultTimeout: 20_000 });
    await worker.start();
    const changes: StateChange[] = [];
    worker.on("state", (change) => changes.push(change));
    const exit = once(worker, "exit");
    const pending = await fivePendingSleeps(worker);
    const started = Date.now();
    expect(await worker.call.exit(3)).toBe("bye");
    const results = await Promise.all(pending);
    expect(Date.now() - started).toBeLessThan(3000);
    for (const { error } of results) {
      expect(error).toBeInstanceOf(WorkerExitedError);
      expect(error.code).toBe("ERR_WORKER_EXITED");
      expect(error.exitCode).toBe(3);
      expect(error.signal).toBeNull();
      expect(error.message).toContain("exited with code 3");
    }
    const times = results.map(({ at }) => at);
    expect(Math.max(...times) - Math.min(...times)).toBeLessThan(50);
    expect(((await exit) as [ExitInfo])[0]).toEqual({ code: 3, signal: null });
    expect(worker.state).toBe("failed");
    expect(worker.isHealthy).toBe(false);
    expect(worker.pendingCalls).toBe(0);
    expect(changes).toContainEqual(expect.objectContaining({ from: "connected", to: "failed", reason: "exit 3" }));

    const later = await rejectionOf(worker.call.add(1, 2));
    expect(later).toBeInstanceOf(WorkerExitedError);
    expect(later.exitCode).toBe(3);
    expect(await rejectionOf(worker.callFunction("add", [1, 2]))).toBeInstanceOf(WorkerExitedError);
    expect(await rejectionOf(worker.ping())).toBeInstanceOf(WorkerExitedError);

    // start() again after a death runs a fresh process.
    const deadPid = worker.pid;
    await worker.start();
    expect(worker.state).toBe("connected");
    expect(worker.pid).not.toBe(deadPid);
    expect(await worker.call.add(1, 2)).toBe(3);
  });

  it("rejects every pending call at once when the child is SIGKILLed", async () => {
    const worker = spawnWorker(MATH);
    await worker.start();
    const pid = worker.pid!;
    const pending = await fivePendingSleeps(worker);
    const started = Date.now();
    process.kill(pid, "SIGKILL");
    const results = await Promise.all(pending);
    expect(Date.now() - started).toBeLessThan(3000);
    for (const { error } of results) {
      expect(error).toBeInstanceOf(WorkerExitedError);
      expect(error.exitCode).toBeNull();
      expect(error.signal).toBe("SIGKILL");
      expect(error.message).toContain("killed by SIGKILL");
    }
    expect(worker.state).toBe("failed");
    expect(isAlive(pid)).toBe(false);
    const later = await rejectionOf(worker.call.add(1, 2));
    expect(later).toBeInstanceOf(WorkerExitedError);
    expect(later.signal).toBe("SIGKILL");
  });
});

describe("stop()", () => {
  it("ends the child through the shutdown message (exit code 0), quickly", async () => {
    // SIGTERM would come only after 10 s: an exit within 5 s is the child obeying `shutdown`.
    const worker = spawnWorker(MATH, "node", { shutdownTimeout: 10_000, killTimeout: 10_000 });
    await worker.start();
    const pid = worker.pid!;
    const changes: StateChange[] = [];
    worker.on("state", (change) => changes.push(change));
    const exits: ExitInfo[] = [];
    worker.on("exit", (exit) => exits.push(exit));
    const started = Date.now();
    const stopping = worker.stop();
    expect(worker.stop()).toBe(stopping);
    await stopping;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(exits).toEqual([{ code: 0, signal: null }]);
    expect(isAlive(pid)).toBe(false);
    expect(worker.state).toBe("stopped");
    expect(changes.map(({ to }) => to)).toEqual(["stopping", "stopped"]);
    await worker.stop(); // stopping a stopped worker is a no-op
    expect(worker.state).toBe("stopped");
  });

  it("lets an in-flight call that finishes within the grace resolve", async () => {
    const worker = spawnWorker(MATH);
    await worker.start();
    const inFlight = worker.call.sleep(300);
    expect(await worker.call.add(1, 1)).toBe(2); // the sleep has reached the child
    await worker.stop();
    expect(await inFlight).toBe(300);
  });

  it("escalates past the grace and rejects calls that outlive it with WorkerNotRunningError", async () => {
    const worker = spawnWorker(MATH, "node", { shutdownTimeout: 200, killTimeout: 300 });
    await worker.start();
    const pid = worker.pid!;
    const exit = once(worker, "exit");
    const inFlight = worker.call.sleep(5000);
    expect(await worker.call.add(1, 1)).toBe(2);
    const started = Date.now();
    await worker.stop();
    expect(Date.now() - started).toBeLessThan(3000);
    const error = await rejectionOf(inFlight);
    expect(error).toBeInstanceOf(WorkerNotRunningError);
    const [{ code, signal }] = (await exit) as [ExitInfo];
    expect(code).toBeNull();
    expect(signal).not.toBeNull(); // ended by stop()'s signal, not by itself
    expect(isAlive(pid)).toBe(false);
  });

  it("SIGKILLs a child that ignores SIGTERM after killTimeout", async () => {
    const lines: string[] = [];
    const worker = spawnWorker(fixture("stubborn-worker.mjs"), "node", {
      shutdownTimeout: 300,
      killTimeout: 500,
      onOutput: (_stream, line) => lines.push(line),
    });
    await worker.start();
    const pid = worker.pid!;
    expect(await worker.call.pid()).toBe(pid);
    await stopExpectingSigkill(worker);
    expect(lines).toContain("stubborn-worker: ignoring SIGTERM");
    expect(isAlive(pid)).toBe(false);
  });

  it("start → stop → start → stop on the same ParentWorker runs a new process each time", async () => {
    const worker = spawnWorker(MATH);
    await worker.start();
    const firstPid = (await worker.call.pid()) as number;
    expect(firstPid).toBe(worker.pid);
    await worker.stop();
    expect(isAlive(firstPid)).toBe(false);
    expect(worker.state).toBe("stopped");

    await worker.start();
    expect(worker.state).toBe("connected");
    const secondPid = (await worker.call.pid()) as number;
    expect(secondPid).toBe(worker.pid);
    expect(secondPid).not.toBe(firstPid);
    expect(await worker.call.add(2, 2)).toBe(4);
    await worker.stop();
    expect(isAlive(secondPid)).toBe(false);
    expect(worker.state).toBe("stopped");
  });

  it("stop() during start() makes start() reject and leaves nothing behind", async () => {
    const worker = spawnWorker(MATH);
    const starting = worker.start();
    const stopped = worker.stop();
    const error = await rejectionOf(starting);
    await stopped;
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(worker.state).toBe("stopped");
    expect(descendants()).toEqual([]);
    // and the worker can still be started afterwards
    await worker.start();
    expect(await worker.call.add(1, 2)).toBe(3);
  });

  it("stop() of a child that never became ready ends it and makes start() reject", async () => {
    const worker = spawnWorker(fixture("never-connects.mjs"), "node", { shutdownTimeout: 200, killTimeout: 1000 });
    const starting = worker.start();
    await waitFor(() => worker.pid !== undefined && isAlive(worker.pid), 5000, "the child process");
    const pid = worker.pid!;
    const started = Date.now();
    await worker.stop();
    expect(Date.now() - started).toBeLessThan(3000); // well before the 10 s startup timeout
    const error = await rejectionOf(starting);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(worker.state).toBe("stopped");
    expect(isAlive(pid)).toBe(false);
    expect(descendants()).toEqual([]);
  });

  it("a stop() through one handle stops the worker for every handle; asyncDispose stops too", async () => {
    const worker = spawnWorker(MATH);
    const a = worker.handle();
    const b = worker.handle();
    await a.start();
    expect(await b.call.add(1, 2)).toBe(3);
    await a.stop();
    expect(await rejectionOf(b.call.add(1, 2))).toBeInstanceOf(WorkerNotRunningError);

    await b.start();
    const pid = worker.pid!;
    expect(await a.call.add(2, 2)).toBe(4);
    await b[Symbol.asyncDispose]();
    expect(worker.state).toBe("stopped");
    expect(isAlive(pid)).toBe(false);
  });
});

describe("wrappers: the real worker is a grandchild", () => {
  const env = { MF_NODE: process.execPath };

  it("a shell wrapper and its worker both end on stop()", async () => {
    const lines: string[] = [];
    const worker = spawnWorker(fixture("wrapper.sh"), "sh", { env, onOutput: (_stream, line) => lines.push(line) });
    await worker.start();
    const wrapperPid = worker.pid!;
    const workerPid = (await worker.call.pid()) as number;
    expect(workerPid).not.toBe(wrapperPid);
    const running = descendants();
    expect(running).toContain(wrapperPid);
    expect(running).toContain(workerPid);
    expect(descendants(wrapperPid)).toEqual([workerPid]);
    expect(await worker.call.add(20, 22)).toBe(42);

    const exit = once(worker, "exit");
    await worker.stop();
    expect(((await exit) as [ExitInfo])[0]).toEqual({ code: 0, signal: null });
    expect(lines).toContain("wrapper: worker exited with 0"); // the worker left by itself, cleanly
    expect(isAlive(wrapperPid)).toBe(false);
    expect(isAlive(workerPid)).toBe(false);
    expect(descendants()).toEqual([]);
  });

  it("a wrapper and worker that both ignore SIGTERM are SIGKILLed after killTimeout, leaving nothing", async () => {
    const worker = spawnWorker(fixture("stubborn-wrapper.sh"), "sh", { env, shutdownTimeout: 300, killTimeout: 500 });
    await worker.start();
    const wrapperPid = worker.pid!;
    const workerPid = (await worker.call.pid()) as number;
    expect(workerPid).not.toBe(wrapperPid);
    expect(descendants()).toEqual(expect.arrayContaining([wrapperPid, workerPid]));

    await stopExpectingSigkill(worker);
    expect(isAlive(wrapperPid)).toBe(false);
    expect(isAlive(workerPid)).toBe(false);
    expect(descendants()).toEqual([]);
  });

  it("stop() returns only when nothing of the group runs: 50 stops of wrappers and workers that ignore SIGTERM", async () => {
    const groups: number[] = [];
    try {
      for (let i = 0; i < 50; i++) {
        // Half of the workers hold the parent's pipes (their closing is a late sign of death), half do not.
        const wrapper = i % 2 === 0 ? "stubborn-wrapper.sh" : "quiet-stubborn-wrapper.sh";
        const worker = spawnWorker(fixture(wrapper), "sh", { env, shutdownTimeout: 10, killTimeout: 20 });
        await worker.start();
        const pgid = worker.pid!;
        groups.push(pgid);
        const workerPid = (await worker.call.pid()) as number;
        expect(groupMembers(pgid).map(({ pid }) => pid)).toEqual(expect.arrayContaining([pgid, workerPid]));
        await worker.stop();
        const left = groupMembers(pgid);
        expect(left.filter(({ state }) => state !== "Z"), `stop #${i}: group ${pgid}`).toEqual([]);
        // A grandchild that outlived the shell is PID 1's to reap, never ours: no zombie waits on
        // this process or on anything of the group.
        for (const zombie of left) {
          expect(zombie.ppid, `stop #${i}: zombie ${zombie.pid}`).not.toBe(process.pid);
          expect(left.map(({ pid }) => pid)).not.toContain(zombie.ppid);
        }
      }
      // Such zombies are gone once PID 1 reaps them (lazily on some machines): nothing of any group stays.
      await waitFor(() => groups.every((pgid) => groupMembers(pgid).length === 0), 10_000, "every group gone, zombies included");
    } finally {
      for (const pgid of groups) {
        try {
          process.kill(-pgid, "SIGKILL");
        } catch {
          // ESRCH: gone, as it should be
        }
      }
    }
  });

  it("when the wrapper dies, its orphaned worker goes with it and pending calls fail", async () => {
    const worker = spawnWorker(fixture("wrapper.sh"), "sh", { env });
    await worker.start();
    const wrapperPid = worker.pid!;
    const workerPid = (await worker.call.pid()) as number;
    const pending = worker.call.sleep(10_000);
    expect(await worker.call.add(1, 1)).toBe(2);
    process.kill(wrapperPid, "SIGKILL");
    const error = await rejectionOf(pending);
    expect(error).toBeInstanceOf(WorkerExitedError);
    expect(error.signal).toBe("SIGKILL");
    await waitFor(() => !isAlive(workerPid), 5000, `grandchild worker ${workerPid} to be gone`);
  });
});
