/**
 * ChildWorker as a real process: port validation, signals, parent death, heartbeats while busy,
 * concurrency, what a subclass exposes, and garbage sent straight to its ROUTER by a raw DEALER.
 */
import { spawn as spawnProcess, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Packr, Unpackr } from "msgpackr";
import * as zmq from "zeromq";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ParentWorker, RemoteCallError, type SpawnOptions } from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const PROBE = fixture("probe-worker.mjs");
const APP = "comlink_ipc_v4";

/** This process's environment without the spawn-mode variables. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!("COMLINK_ZMQ_PORT" in extra)) delete env.COMLINK_ZMQ_PORT;
  delete env.COMLINK_WORKER_MODE;
  return env;
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Processes this file started directly; afterEach kills whatever is still alive. */
const plainChildren: ChildProcess[] = [];
const orphans: number[] = [];

/** Runs `node script` to its exit (killed after `timeoutMs`). */
async function runToExit(script: string, env: NodeJS.ProcessEnv, timeoutMs = 10_000): Promise<Finished> {
  const started = Date.now();
  const child = spawnProcess(process.execPath, [script], { env, stdio: ["ignore", "pipe", "pipe"] });
  plainChildren.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr, elapsedMs: Date.now() - started };
}

const workers: ParentWorker[] = [];
function spawnWorker(script: string, options: SpawnOptions = {}): ParentWorker {
  const worker = ParentWorker.spawn(script, "node", { onOutput: () => {}, ...options });
  workers.push(worker);
  return worker;
}

// ---- a raw v4 parent: a DEALER this test binds, and a child spawned with its port ----

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const EMPTY = Buffer.alloc(0);
const rawParents: RawParent[] = [];
let nextId = 0;

class RawParent {
  readonly dealer = new zmq.Dealer({ linger: 0 });
  child!: ChildProcess;
  port!: number;
  stderr = "";
  exited!: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  static async start(script: string): Promise<RawParent> {
    const raw = new RawParent();
    rawParents.push(raw);
    await raw.dealer.bind("tcp://127.0.0.1:*");
    raw.port = Number(/:(\d+)$/.exec(raw.dealer.lastEndpoint ?? "")?.[1]);
    raw.child = spawnProcess(process.execPath, [script], {
      env: cleanEnv({ COMLINK_ZMQ_PORT: String(raw.port) }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    raw.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (raw.stderr += chunk));
    raw.exited = new Promise((resolve) => raw.child.once("exit", (code, signal) => resolve({ code, signal })));
    // Ready once the child answers a heartbeat (the DEALER holds it until the child connects).
    const hello = await raw.request({ type: "heartbeat" });
    expect(hello.type).toBe("heartbeat");
    return raw;
  }

  sendFrames(...frames: Buffer[]): Promise<void> {
    return this.dealer.send(frames);
  }

  send(message: unknown): Promise<void> {
    return this.sendFrames(EMPTY, packr.pack(message));
  }

  /** The next reply, or undefined when none arrives within `timeoutMs`. */
  async receive(timeoutMs = 5000): Promise<Record<string, any> | undefined> {
    this.dealer.receiveTimeout = timeoutMs;
    try {
      const frames = await this.dealer.receive();
      return unpackr.unpack(frames[frames.length - 1]!) as Record<string, any>;
    } catch (error) {
      if ((error as { code?: string }).code === "EAGAIN") return undefined;
      throw error;
    }
  }

  /** Sends a message with a fresh id (unless given) and returns the reply, which must carry that id. */
  async request(fields: Record<string, unknown>): Promise<Record<string, any>> {
    const id = (fields.id as string | undefined) ?? `raw-${++nextId}`;
    await this.send({ app: APP, id, timestamp: Date.now() / 1000, ...fields });
    const reply = await this.receive();
    expect(reply, `a reply to ${id}`).toBeDefined();
    expect(reply!.id).toBe(id);
    return reply!;
  }

  call(fn: string, args: unknown[] = [], extra: Record<string, unknown> = {}): Promise<Record<string, any>> {
    return this.request({ type: "call", function: fn, args, namespace: "default", ...extra });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
    this.dealer.close();
  }
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
  await Promise.all(rawParents.splice(0).map((raw) => raw.close()));
  for (const child of plainChildren.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "close");
    }
  }
  for (const pid of orphans.splice(0)) {
    if (isAlive(pid)) process.kill(pid, "SIGKILL");
  }
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by child-worker tests");
});

describe("startup validation", () => {
  it("exits with code 1 and a FATAL line for an invalid COMLINK_ZMQ_PORT", async () => {
    const ports = ["abc", "80", "70000", "", "1023", "65536", "12.5", "-5000"];
    const results = await Promise.all(ports.map((port) => runToExit(MATH, cleanEnv({ COMLINK_ZMQ_PORT: port }))));
    results.forEach((result, i) => {
      expect(result.code, `port '${ports[i]}': ${result.stderr}`).toBe(1);
      expect(result.stderr).toContain("FATAL");
      expect(result.stderr).toContain(`'${ports[i]}'`);
    });
  });

  it("exits with code 1 and FATAL with neither a port nor a serviceId (a serviceId means connect mode)", async () => {
    const plain = await runToExit(MATH, cleanEnv());
    expect(plain.code, plain.stderr).toBe(1);
    expect(plain.stderr).toMatch(/^FATAL: Need COMLINK_ZMQ_PORT env \(spawn mode\) or a serviceId \(connect mode\)/m);
  });
});

describe("signals, shutdown and parent death", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`exits with code 0 on ${signal}, finishing the call in flight`, async () => {
      const worker = spawnWorker(MATH);
      await worker.start();
      const pid = worker.pid!;
      const exit = once(worker, "exit");
      const inFlight = worker.call.sleep(300);
      expect(await worker.call.add(1, 1)).toBe(2); // the sleep has certainly reached the child
      const sentAt = Date.now();
      process.kill(pid, signal);
      expect(await inFlight).toBe(300);
      const [{ code, signal: killedBy }] = (await exit) as [{ code: number | null; signal: string | null }];
      expect(Date.now() - sentAt).toBeLessThan(5000);
      expect(killedBy).toBeNull();
      expect(code).toBe(0);
      expect(isAlive(pid)).toBe(false);
      expect(worker.state).toBe("stopped"); // a clean exit 0 is a normal stop
    });
  }

  it("exits by itself when its parent is SIGKILLed", async () => {
    const parent = spawnProcess(process.execPath, [fixture("orphan-parent.mjs"), MATH], { stdio: ["ignore", "pipe", "pipe"] });
    plainChildren.push(parent);
    let stdout = "";
    parent.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    await waitFor(() => /WORKER_PID (\d+)/.test(stdout) || parent.exitCode !== null, 10_000, "the worker pid");
    const workerPid = Number(/WORKER_PID (\d+)/.exec(stdout)?.[1]);
    expect(workerPid).toBeGreaterThan(0);
    orphans.push(workerPid);
    expect(isAlive(workerPid)).toBe(true);
    expect(descendants(parent.pid)).toContain(workerPid);

    parent.kill("SIGKILL");
    await once(parent, "close");
    expect(isAlive(workerPid)).toBe(true); // the worker is in its own process group: it outlived the kill
    await waitFor(() => !isAlive(workerPid), 6000, `orphaned worker ${workerPid} to exit`);
  });

  it("exits after exitAfterStopMs when the user's own timers keep the loop alive", async () => {
    const worker = spawnWorker(fixture("lingering-worker.mjs"), { shutdownTimeout: 8000, killTimeout: 8000 });
    await worker.start();
    const exit = once(worker, "exit");
    const started = Date.now();
    await worker.stop();
    const elapsed = Date.now() - started;
    expect(((await exit) as [{ code: number | null; signal: string | null }])[0]).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeGreaterThanOrEqual(800); // the default 1000 ms, not an immediate exit
    expect(elapsed).toBeLessThan(5000); // and long before stop() would send SIGTERM
  });
});

describe("heartbeats and concurrency", () => {
  it("answers heartbeats while async handlers run", async () => {
    const worker = spawnWorker(PROBE);
    await worker.start();
    const order: string[] = [];
    const sleeps = [1, 2, 3].map(() => worker.call.sleep(1000).then((value) => (order.push("sleep"), value)));
    const rtt = await worker.ping();
    order.push("ping");
    expect(rtt).toBeLessThan(1000);
    expect(await Promise.all(sleeps)).toEqual([1000, 1000, 1000]);
    expect(order).toEqual(["ping", "sleep", "sleep", "sleep"]);
    expect(await worker.call.heartbeats()).toBeGreaterThanOrEqual(2); // start() + ping()
  });

  it("overlaps async calls, and runs them one at a time with { concurrency: 1 }", async () => {
    const parallel = spawnWorker(PROBE);
    const serial = spawnWorker(fixture("serial-worker.mjs"));
    await Promise.all([parallel.start(), serial.start()]);

    let started = Date.now();
    expect(await Promise.all(Array.from({ length: 5 }, () => parallel.call.sleep(300)))).toEqual([300, 300, 300, 300, 300]);
    const parallelMs = Date.now() - started;
    expect(parallelMs).toBeLessThan(1200);

    started = Date.now();
    const order: string[] = [];
    const serialCalls = Promise.all(Array.from({ length: 5 }, () => serial.call.sleep(300).then((v) => (order.push("sleep"), v))));
    // Heartbeats bypass the call queue even when it is full.
    await serial.ping();
    order.push("ping");
    expect(await serialCalls).toEqual([300, 300, 300, 300, 300]);
    expect(order[0]).toBe("ping");
    const serialMs = Date.now() - started;
    expect(serialMs).toBeGreaterThanOrEqual(1400);
  });
});

describe("what a subclass exposes", () => {
  it("lists methods and function fields of the whole user class chain, nothing else", async () => {
    const worker = spawnWorker(fixture("chain-worker.mjs"));
    await worker.start();
    expect(await worker.call.listFunctions()).toEqual(["a", "b", "c"]);
    expect(await worker.call.a()).toBe("a");
    expect(await worker.call.b()).toBe("ab:s"); // `this` is the instance; #private methods work inside
    expect(await worker.call.c()).toBe("c");
    for (const name of ["d", "prop", "toString", "st", "listFunctions_", "run", "stop"]) {
      const error = await rejectionOf(worker.callFunction(name));
      expect(error, name).toBeInstanceOf(RemoteCallError);
      expect(error.message, name).toMatch(/not found/);
    }
    for (const name of ["_x", "_e", "#secret"]) {
      const error = await rejectionOf(worker.callFunction(name));
      expect(error, name).toBeInstanceOf(RemoteCallError);
      expect(error.message, name).toContain("Cannot call private method");
    }
  });
});

describe("garbage at the ROUTER", () => {
  it("drops undecodable bytes, non-maps, id-less calls, empty payloads and keeps serving", async () => {
    const raw = await RawParent.start(PROBE);
    await raw.sendFrames(EMPTY, Buffer.from([0x92, 0x01])); // truncated array
    await raw.sendFrames(EMPTY, Buffer.from([0x01, 0x02])); // trailing bytes
    await raw.sendFrames(EMPTY, Buffer.from("this is not msgpack at all \xff\xfe", "latin1"));
    await raw.send([1, 2, 3]); // an array, not a map
    await raw.send("call"); // a string
    await raw.send({ app: APP, type: "call", function: "add", args: [1, 2], namespace: "default", timestamp: 1 }); // no id
    await raw.send({ app: APP, id: "", type: "call", function: "add", args: [1, 2], timestamp: 1 }); // empty id
    await raw.send({ app: APP, type: "heartbeat", timestamp: 1 }); // heartbeat without id
    await raw.sendFrames(EMPTY, EMPTY); // empty payload
    await raw.send({ app: APP, id: "unknown-1", type: "frobnicate", timestamp: 1 }); // unknown type
    await raw.send({ app: APP, id: "resp-1", type: "response", result: 1, timestamp: 1 }); // not for a child

    // Nothing above produced a reply: the first reply is the valid call's.
    const reply = await raw.call("add", [2, 3]);
    expect(reply).toMatchObject({ app: APP, type: "response", result: 5 });
    expect(raw.child.exitCode).toBeNull();

    const rejected = (await raw.call("rejected")).result as Record<string, number>;
    expect(rejected).toEqual({ undecodable: 4, "not-a-map": 2, "missing-id": 3, "unknown-type": 1 });
    expect(raw.stderr).not.toMatch(/receive loop failed|Error/);
  });

  it("answers a single-frame message (no empty delimiter) with a single-frame reply", async () => {
    const raw = await RawParent.start(PROBE);
    await raw.sendFrames(packr.pack({ app: APP, id: "single-1", type: "call", function: "add", args: [4, 5], namespace: "default", timestamp: 1 }));
    raw.dealer.receiveTimeout = 5000;
    const frames = await raw.dealer.receive();
    expect(frames.length).toBe(1);
    expect(unpackr.unpack(frames[0]!)).toMatchObject({ id: "single-1", type: "response", result: 9 });
    // A single-frame garbage message is dropped like any other.
    await raw.sendFrames(Buffer.from([0x92, 0x01]));
    expect(await raw.call("add", [1, 1])).toMatchObject({ result: 2 });
  });

  it("answers a call with an id but no function, non-array args or a non-string namespace, with an error", async () => {
    const raw = await RawParent.start(PROBE);
    const noFunction = await raw.request({ type: "call", args: [1], namespace: "default" });
    expect(noFunction.type).toBe("error");
    expect(noFunction.error).toMatch(/missing 'function'/);
    const emptyFunction = await raw.request({ type: "call", function: "", args: [] });
    expect(emptyFunction.type).toBe("error");
    const badArgs = await raw.request({ type: "call", function: "add", args: "1,2" });
    expect(badArgs.type).toBe("error");
    expect(badArgs.error).toMatch(/'args' must be an array/);
    const badNamespace = await raw.request({ type: "call", function: "add", args: [1, 2], namespace: 5 });
    expect(badNamespace).toMatchObject({ type: "error", error: "InvalidMessageError: 'namespace' must be a string" });
    // A nil namespace is read as a missing one: "default".
    expect(await raw.request({ type: "call", function: "add", args: [1, 2], namespace: null })).toMatchObject({ type: "response", result: 3 });
    // args may be omitted (empty) and namespace defaults to "default".
    const noArgs = await raw.request({ type: "call", function: "received" });
    expect(noArgs.type).toBe("response");
    expect(typeof noArgs.result).toBe("number");
    expect(await raw.call("add", [1, 2])).toMatchObject({ type: "response", result: 3 });
  });

  it("ignores a call with the wrong app id, even one with an id (spec 9.2 / 25.6)", async () => {
    const raw = await RawParent.start(PROBE);
    await raw.send({ app: "comlink_ipc_v3", id: "wrong-app-1", type: "call", function: "add", args: [1, 2], namespace: "default", timestamp: 1 });
    await raw.send({ id: "no-app-1", type: "call", function: "add", args: [1, 2], namespace: "default", timestamp: 1 });
    expect(await raw.receive(500)).toBeUndefined();
    expect(await raw.call("add", [1, 2])).toMatchObject({ type: "response", result: 3 });
    const rejected = (await raw.call("rejected")).result as Record<string, number>;
    expect(rejected["wrong-app"]).toBe(2);
  });

  it("ignores a call for another namespace, then answers a default-namespace call", async () => {
    const raw = await RawParent.start(PROBE);
    await raw.send({ app: APP, id: "ns-1", type: "call", function: "add", args: [1, 2], namespace: "other", timestamp: 1 });
    expect(await raw.receive(500)).toBeUndefined();
    expect(await raw.call("add", [1, 2])).toMatchObject({ id: expect.any(String), type: "response", result: 3 });
    const rejected = (await raw.call("rejected")).result as Record<string, number>;
    expect(rejected["namespace-mismatch"]).toBe(1);
    expect((await raw.call("received")).result).toBe(3); // add, rejected, received — not the ignored one
  });

  it("answers a heartbeat with the same id and the sent metadata plus hb_response", async () => {
    const raw = await RawParent.start(PROBE);
    const sent = 1_700_000_000.125;
    const reply = await raw.request({ id: "hb-fixed-id", type: "heartbeat", timestamp: sent, metadata: { hb_timestamp: sent, trace: "kept" } });
    expect(reply.app).toBe(APP);
    expect(reply.type).toBe("heartbeat");
    expect(reply.id).toBe("hb-fixed-id");
    expect(reply.metadata).toEqual({ hb_timestamp: sent, trace: "kept", hb_response: true });
    expect(typeof reply.timestamp).toBe("number");
    const bare = await raw.request({ type: "heartbeat" });
    expect(bare.metadata).toEqual({ hb_response: true });
    const junk = await raw.request({ type: "heartbeat", metadata: "not a map" });
    expect(junk.metadata).toEqual({ hb_response: true });
    expect((await raw.call("heartbeats")).result).toBe(4); // the readiness heartbeat + these three
  });

  it("after a shutdown message, finishes calls in flight, refuses new ones, then exits 0", async () => {
    const raw = await RawParent.start(PROBE);
    const call = (id: string, fn: string, args: unknown[]) =>
      raw.send({ app: APP, id, type: "call", function: fn, args, namespace: "default", timestamp: Date.now() / 1000 });
    await call("slow", "sleep", [400]);
    await raw.send({ app: APP, id: "bye", type: "shutdown", timestamp: Date.now() / 1000 });
    await call("late", "add", [1, 2]);
    const started = Date.now();
    const first = await raw.receive();
    const second = await raw.receive();
    expect(first).toMatchObject({ id: "late", type: "error" });
    expect(first!.error).toMatch(/^WorkerStoppingError: /);
    expect(second).toMatchObject({ id: "slow", type: "response", result: 400 });
    expect(await raw.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
