import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fixture, workerTracker } from "./helpers/fixtures.js";
import { isAlive, reapAll, waitFor } from "./helpers/processes.js";

// A second local user (nobody) — and a process of our own user outside the worker's group — try
// to take the calls meant for a spawned child: they connect to the parent's TCP spawn endpoint
// and answer everything with "FORGED". The ZAP check refuses them before any message reaches them.

const IMPOSTOR = fixture("attacker/impostor-child.mjs");
const MATH = fixture("math-worker.mjs");
const PY_V4_PEER = new URL("./peer/mf_peer.py", import.meta.url).pathname;
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const workers = workerTracker();
const impostors: ChildProcess[] = [];

afterEach(async () => {
  await workers.stopAll();
  await reapAll(impostors);
});

/** Starts the impostor (as `nobody` when asked) and resolves once its socket is connecting. */
async function impostor(endpoint: string, asNobody: boolean): Promise<{ received(): Promise<number> }> {
  const command = asNobody
    ? ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", process.execPath, IMPOSTOR, endpoint]
    : [process.execPath, IMPOSTOR, endpoint];
  const child = spawn(command[0]!, command.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  impostors.push(child);
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  while (!out.includes("READY")) await once(child.stdout!, "data");
  return {
    async received() {
      child.kill("SIGTERM");
      await once(child, "close");
      return (JSON.parse(out.split("\n").find((line) => line.startsWith("{"))!) as { received: number }).received;
    },
  };
}

describe("spawn mode is private", () => {
  for (const asNobody of [true, false]) {
    const who = asNobody ? "another user (nobody)" : "a process of ours outside the worker's group";
    it(`${who} connected to the TCP spawn endpoint gets no call and forges no result (our child, over ipc)`, async () => {
      const worker = workers.spawn(MATH, "node");
      await worker.start();
      const attacker = await impostor(`tcp://127.0.0.1:${worker.port}`, asNobody);
      // Give its connection time to be made and refused while calls flow.
      const results = [];
      for (let i = 0; i < 100; i++) results.push(await worker.call.add(i, 1));
      expect(results).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(await attacker.received()).toBe(0);
    });
  }

  it("our Python library's child uses the private channel too: an impostor of another user gets nothing", async () => {
    const worker = workers.spawn(new URL("./fixtures/python-lib/interop_worker.py", import.meta.url).pathname, PYTHON, {
      env: { PYTHONPATH: new URL("../python/src", import.meta.url).pathname },
    });
    await worker.start();
    const attacker = await impostor(`tcp://127.0.0.1:${worker.port}`, true);
    const results = [];
    for (let i = 0; i < 50; i++) results.push(await worker.call.add(i, 1));
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await attacker.received()).toBe(0);
  });

  it("stays private across workers that come and go (the ZAP handler restarts; peers are refused meanwhile, never let in)", async () => {
    for (let round = 0; round < 5; round++) {
      const worker = workers.spawn(MATH, "node");
      await worker.start();
      const attacker = await impostor(`tcp://127.0.0.1:${worker.port}`, true);
      const results = [];
      for (let i = 0; i < 20; i++) results.push(await worker.call.add(i, 1));
      expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(await attacker.received()).toBe(0);
      await worker.stop();
    }
  });

  it("a v4 child over TCP is admitted, and an impostor that connects before it is not", async () => {
    const worker = workers.spawn(PY_V4_PEER, PYTHON, { args: ["child"] });
    const starting = worker.start();
    // The impostor races the child to the port the parent bound.
    while (worker.port === undefined) await new Promise((resolve) => setImmediate(resolve));
    const attacker = await impostor(`tcp://127.0.0.1:${worker.port}`, true);
    await starting;
    const results = [];
    for (let i = 0; i < 100; i++) results.push(await worker.call.add(i, 1));
    expect(results).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await attacker.received()).toBe(0);
  });

  it("leaves no private directory behind: removed on stop, and a SIGKILLed parent's is swept by the next process", async () => {
    const ofPid = (pid: number) => readdirSync(tmpdir()).filter((entry) => entry.startsWith(`multifrost-${pid}-`));
    const worker = workers.spawn(MATH, "node");
    await worker.start();
    expect(ofPid(process.pid)).toHaveLength(1);
    await worker.stop();
    expect(ofPid(process.pid)).toEqual([]);

    const parent = async (): Promise<{ child: ChildProcess; workerPid: number }> => {
      const child = spawn(process.execPath, [fixture("orphan-parent.mjs"), MATH], { stdio: ["ignore", "pipe", "inherit"] });
      impostors.push(child);
      let out = "";
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
      while (!/WORKER_PID (\d+)/.test(out)) await once(child.stdout!, "data");
      return { child, workerPid: Number(/WORKER_PID (\d+)/.exec(out)![1]) };
    };
    const first = await parent();
    expect(ofPid(first.child.pid!)).toHaveLength(1);
    first.child.kill("SIGKILL");
    await once(first.child, "close");
    await waitFor(() => !isAlive(first.workerPid), 5000, "the orphaned worker to exit");
    // A SIGKILLed process cleans nothing up; its directory is now a dead process's. (Not asserted
    // here: any process's first spawn sweeps such directories, and other test files spawn meanwhile.)
    const second = await parent(); // its first spawn sweeps what dead processes left
    try {
      expect(ofPid(first.child.pid!)).toEqual([]);
    } finally {
      second.child.kill("SIGKILL");
      await once(second.child, "close");
      await waitFor(() => !isAlive(second.workerPid), 5000, "the second orphaned worker to exit");
      for (const entry of ofPid(second.child.pid!)) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
  });
});
