import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CallTimeoutError, EncodeError, ParentWorker, RemoteCallError, type DynamicFunctions } from "../dist/index.js";
import { type InteropCalls, expectInt64Limits, expectNestedUnicodeBytes, expectPrimitiveTypes, PYTHON_TYPES } from "./helpers/interop-vectors.js";
import { descendants, isAlive, reapAll, startCaptured, waitFor, type CapturedRun } from "./helpers/processes.js";

/**
 * The Python worker library (python/src/multifrost) with our TS parent, and with the project's
 * Python v4-style peer (test/peer/mf_peer.py) as parent. Workers run under Debian's
 * /usr/bin/python3 (python3-zmq, python3-msgpack) with PYTHONPATH pointing at python/src, so
 * nothing needs installing. Registries are temporary directories; every process is reaped.
 */
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_ENV = { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":") };
const WORKER = fileURLToPath(new URL("./fixtures/python-lib/interop_worker.py", import.meta.url));
const ORPHAN_PARENT = fileURLToPath(new URL("./fixtures/python-lib/orphan-parent.mjs", import.meta.url));
const PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const TS_WORKER = fileURLToPath(new URL("./fixtures/math-worker.mjs", import.meta.url));

/** Every parent and raw process a test starts; all stopped or SIGKILLed after each test. */
const parents: ParentWorker[] = [];
const processes: ChildProcess[] = [];
const registryDirs: string[] = [];

afterEach(async () => {
  await Promise.all(parents.splice(0).map((worker) => worker.stop()));
  await reapAll(processes);
  for (const dir of registryDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

function spawnWorker(options: Record<string, unknown> = {}, args: string[] = []): ParentWorker {
  const worker = ParentWorker.spawn(WORKER, PYTHON, { name: "pylib", onOutput: () => undefined, env: PY_ENV, args, ...options });
  parents.push(worker);
  return worker;
}

function registryDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "multifrost-pylib-"));
  registryDirs.push(dir);
  return dir;
}

function readRegistry(dir: string): Record<string, { port: number; pid: number; started: string }> {
  try {
    return JSON.parse(readFileSync(join(dir, "services.json"), "utf8"));
  } catch {
    return {};
  }
}


/** A raw process (reaped after the test), its output kept. */
function start(command: string, args: string[], env: Record<string, string> = {}): CapturedRun {
  return startCaptured(command, args, env, processes);
}

async function elapsedMs(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

describe("TS parent → Python library worker (spawn mode)", () => {
  let worker: ParentWorker;
  const output: string[] = [];

  beforeAll(async () => {
    worker = ParentWorker.spawn(WORKER, PYTHON, {
      name: "pylib",
      env: PY_ENV,
      onOutput: (stream: string, line: string) => output.push(`${stream}: ${line}`),
    });
    await worker.start();
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it("is ready after a heartbeat and answers calls", async () => {
    expect(worker.state).toBe("connected");
    const call = worker.handle().call;
    expect(await call.add(1, 2)).toBe(3);
    expect(await call.multiply(2.5, 4)).toBe(10);
    expect(await worker.ping()).toBeGreaterThan(0);
  });

  it("round-trips primitives with the right Python types", async () => {
    const call = worker.handle<InteropCalls & DynamicFunctions>().call;
    await expectPrimitiveTypes(call, PYTHON_TYPES);
    expect(await call.echo_many(1, "b", null)).toEqual([1, "b", null]);
  });

  it("round-trips nested structures, unicode and bytes", async () => {
    await expectNestedUnicodeBytes(worker.handle<InteropCalls>().call);
  });

  it("carries int64 and uint64 limits exactly, and refuses what does not fit", async () => {
    const call = worker.handle<InteropCalls & DynamicFunctions>().call;
    await expectInt64Limits(call);
    // A result the wire cannot carry is an error reply, not a lost call.
    const tooBig = (await call.too_big().catch((e: unknown) => e)) as RemoteCallError;
    expect(tooBig).toBeInstanceOf(RemoteCallError);
    expect(tooBig.remoteType).toBe("EncodeError");
    const intKeys = (await call.int_keys().catch((e: unknown) => e)) as RemoteCallError;
    expect(intKeys.remoteType).toBe("EncodeError");
    expect(intKeys.message).toMatch(/string keys/);
  });

  it("answers None as null", async () => {
    expect(await worker.handle().call.none()).toBeNull();
    expect(await worker.handle().call.echo(null)).toBeNull();
  });

  it("turns exceptions into RemoteCallError with type, message and traceback", async () => {
    const remote = (await worker.handle().call.fail("boom").catch((e: unknown) => e)) as RemoteCallError;
    expect(remote).toBeInstanceOf(RemoteCallError);
    expect(remote.remoteType).toBe("ValueError");
    expect(remote.remoteMessage).toBe("boom");
    expect(remote.remoteStack).toMatch(/Traceback[\s\S]*in fail/);
  });

  it("calls only the user's methods: never _private nor ChildWorker's own members", async () => {
    for (const name of ["no_such_fn", "_private", "__init__", "run", "stop", "call", "stats", "namespace", "_mf_runtime"]) {
      const error = await worker.callFunction(name).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(RemoteCallError);
      expect((error as Error).message, name).toMatch(name.startsWith("_") ? /private/ : /not found/);
    }
    for (const listName of ["list_functions", "listFunctions"]) {
      const names = (await worker.callFunction(listName)) as string[];
      expect(names).toContain("add");
      expect(names).toContain("async_slow");
      for (const hidden of ["_private", "run", "stop", "list_functions", "call", "namespace"]) expect(names).not.toContain(hidden);
    }
  });

  it("refuses a Map with non-string keys before sending, and times out a namespace mismatch", async () => {
    await expect(worker.handle().call.echo(new Map([[1, "x"]]))).rejects.toBeInstanceOf(EncodeError);
    const error = await worker.handle().call.withOptions({ namespace: "other", timeout: 300 }).add(1, 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(await worker.handle().call.add(2, 2)).toBe(4);
  });

  it("pipelines 250 calls and moves 1 MiB both ways", async () => {
    const call = worker.handle().call;
    const results = await Promise.all(Array.from({ length: 250 }, (_, i) => call.add(i, 1000)));
    expect(results).toEqual(Array.from({ length: 250 }, (_, i) => i + 1000));
    const payload = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const back = (await call.echo(payload)) as Buffer;
    expect(Buffer.compare(back, payload)).toBe(0);
  });

  it("gives handlers their call context (self.call), sync and async", async () => {
    const context = (await worker.handle().call.context()) as { id: string; function: string; traceparent: unknown; deadline: unknown };
    expect(context.function).toBe("context");
    expect(typeof context.id).toBe("string");
    expect(context.id.length).toBeGreaterThan(0);
    expect(typeof (await worker.handle().call.async_context())).toBe("string");
  });

  it("overlaps 5 slow sync calls (5 × 300 ms in < 0.6 s)", async () => {
    const call = worker.handle().call;
    const ms = await elapsedMs(() => Promise.all(Array.from({ length: 5 }, () => call.slow(300))));
    expect(ms).toBeLessThan(600);
  });

  it("overlaps 5 slow async calls (5 × 300 ms in < 0.6 s)", async () => {
    const call = worker.handle().call;
    const ms = await elapsedMs(() => Promise.all(Array.from({ length: 5 }, () => call.async_slow(300))));
    expect(ms).toBeLessThan(600);
  });

  it("prints each line once: spawn mode's output arrives through the pipes", async () => {
    output.length = 0;
    expect(await worker.handle().call.print_lines("spawned", 3)).toBe(3);
    const expected = ["stdout: spawned 0", "stdout: spawned 1", "stdout: spawned 2", "stderr: spawned err"];
    await waitFor(() => expected.every((line) => output.includes(line)), 5000, "the printed lines");
    for (const line of expected) expect(output.filter((l) => l === line), line).toHaveLength(1);
  });
});

describe("Python library worker: liveness", () => {
  const HEARTBEATS = { heartbeatInterval: 0.2, heartbeatTimeout: 0.2 };

  for (const [what, fn] of [
    ["sleeping", "slow"],
    ["CPU-bound", "spin"],
  ] as const) {
    it(`answers heartbeats during a 3 s ${what} sync call and is never restarted`, async () => {
      const worker = spawnWorker({ ...HEARTBEATS, autoRestart: true, defaultTimeout: 10_000 });
      const states: string[] = [];
      worker.on("state", (change: { to: string }) => states.push(change.to));
      await worker.start();
      const pid = worker.pid;
      const call = worker.handle().call as unknown as Record<string, (ms: number) => Promise<unknown>>;
      const long = call[fn]!(3000);
      const rtts: number[] = [];
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        rtts.push(await worker.ping(1000));
      }
      await long;
      expect(Math.max(...rtts)).toBeLessThan(200);
      expect(states.filter((s) => ["restarting", "failed", "stopped", "stopping"].includes(s))).toEqual([]);
      expect(worker.pid).toBe(pid);
      expect(worker.state).toBe("connected");
    }, 15_000);
  }

  it("exits 1 with a clear FATAL line when COMLINK_ZMQ_PORT is invalid", async () => {
    for (const port of ["abc", "80", "70000", ""]) {
      const run = start(PYTHON, [WORKER], { ...PY_ENV, COMLINK_ZMQ_PORT: port });
      const { code } = await run.exited;
      expect(code, port).toBe(1);
      expect(run.stderr(), port).toMatch(new RegExp(`FATAL: invalid COMLINK_ZMQ_PORT '${port}'`));
      expect(run.stderr(), port).not.toMatch(/Traceback/);
    }
    const env: NodeJS.ProcessEnv = { ...process.env, ...PY_ENV };
    delete env.COMLINK_ZMQ_PORT;
    const neither = spawn(PYTHON, [WORKER], { env, stdio: ["ignore", "ignore", "pipe"] });
    processes.push(neither);
    let stderr = "";
    neither.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = await once(neither, "close");
    expect(code).toBe(1);
    expect(stderr).toMatch(/FATAL: Need COMLINK_ZMQ_PORT env \(spawn mode\) or a service_id \(connect mode\)/);
  });

  it("stops on the parent's shutdown message with exit code 0, leaving nothing behind", async () => {
    const worker = spawnWorker();
    const exits: (number | null)[] = [];
    worker.on("exit", (exit: { code: number | null }) => exits.push(exit.code));
    await worker.start();
    const pid = worker.pid!;
    await worker.stop();
    expect(exits).toEqual([0]);
    expect(isAlive(pid)).toBe(false);
  });

  it("finishes a running call on SIGTERM, then exits 0", async () => {
    const worker = spawnWorker({ defaultTimeout: 10_000 });
    const exits: (number | null)[] = [];
    worker.on("exit", (exit: { code: number | null }) => exits.push(exit.code));
    await worker.start();
    const pending = worker.handle().call.slow(600);
    await waitFor(() => worker.pendingCalls === 1, 5000, "the call to be pending");
    await worker.ping(); // the call, sent before this heartbeat on the same connection, has reached the worker
    process.kill(worker.pid!, "SIGTERM");
    expect(await pending).toBe(600);
    await waitFor(() => exits.length === 1, 5000, "the worker to exit");
    expect(exits).toEqual([0]);
  });

  it("exits within 5 s when its parent is SIGKILLed", async () => {
    const parent = start(process.execPath, [ORPHAN_PARENT, PYTHON, WORKER], PY_ENV);
    await waitFor(() => /WORKER_PID \d+/.test(parent.stdout()), 10_000, "the parent to report its worker");
    const workerPid = Number(/WORKER_PID (\d+)/.exec(parent.stdout())![1]);
    try {
      expect(isAlive(workerPid)).toBe(true);
      parent.child.kill("SIGKILL");
      await parent.exited;
      await waitFor(() => !isAlive(workerPid), 5000, "the orphaned Python worker to exit");
    } finally {
      if (isAlive(workerPid)) process.kill(workerPid, "SIGKILL");
    }
  });
});

describe("Python v4-style parent (test/peer) → Python library worker", () => {
  /** Runs mf_peer.py in a parent role and returns its case records. */
  async function runPeer(args: string[]): Promise<{ cases: { case: string; ok: boolean; detail: string }[]; done: unknown; code: number | null; stderr: string }> {
    const run = start(PYTHON, [PEER, ...args], PY_ENV);
    const { code } = await run.exited;
    const records = run
      .stdout()
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { case?: string; ok?: boolean; detail?: string; done?: boolean; passed?: number; failed?: number });
    const cases = records.filter((r) => r.case).map((r) => ({ case: r.case!, ok: r.ok!, detail: r.detail ?? "" }));
    const done = records.find((r) => r.done);
    return { cases, done: done && { passed: done.passed, failed: done.failed }, code, stderr: run.stderr() };
  }

  it("passes every interop case in spawn mode", async () => {
    const { cases, done, code, stderr } = await runPeer(["parent", "--exec", PYTHON, "--script", WORKER, "--script-arg", "ts-style"]);
    expect(cases.filter((c) => !c.ok), stderr).toEqual([]);
    expect(cases).toHaveLength(19);
    expect(done).toEqual({ passed: 19, failed: 0 });
    expect(code).toBe(0);
  }, 60_000);

  it("passes every interop case against a registered service (connect mode)", async () => {
    const dir = registryDir();
    const service = start(PYTHON, [WORKER, "ts-style"], { ...PY_ENV, MULTIFROST_REGISTRY_DIR: dir, MF_SERVICE_ID: "py-interop" });
    await waitFor(() => readRegistry(dir)["py-interop"]?.pid === service.child.pid, 10_000, "the service to register");
    const { cases, done, code, stderr } = await runPeer(["connect", "--service", "py-interop", "--registry-dir", dir]);
    expect(cases.filter((c) => !c.ok), stderr).toEqual([]);
    expect(done).toEqual({ passed: 18, failed: 0 });
    expect(code).toBe(0);
  }, 60_000);
});

describe("Python library services (connect mode)", () => {
  it("registers 10 Python and 10 TS services at once (all 20 land), serves them, and unregisters each on SIGTERM", async () => {
    const dir = registryDir();
    const services: CapturedRun[] = [];
    for (let i = 0; i < 10; i++) {
      services.push(start(PYTHON, [WORKER], { ...PY_ENV, MULTIFROST_REGISTRY_DIR: dir, MF_SERVICE_ID: `py-${i}` }));
      services.push(start(process.execPath, [TS_WORKER], { MULTIFROST_REGISTRY_DIR: dir, MF_SERVICE_ID: `ts-${i}` }));
    }
    const expected = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      expected.set(`py-${i}`, services[2 * i]!.child.pid!);
      expected.set(`ts-${i}`, services[2 * i + 1]!.child.pid!);
    }
    await waitFor(
      () => {
        const crashed = services.find((s) => s.child.exitCode !== null);
        if (crashed) throw new Error(`a service exited early: ${crashed.stderr()}`);
        const entries = readRegistry(dir);
        return [...expected].every(([id, pid]) => entries[id]?.pid === pid);
      },
      20_000,
      "all 20 services to register",
    );
    const entries = readRegistry(dir);
    expect(Object.keys(entries).sort()).toEqual([...expected.keys()].sort());
    expect(entries["py-0"]!.started).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const worker = await ParentWorker.connect("py-3", 5000, { registryDir: dir, onOutput: () => undefined });
    parents.push(worker);
    await worker.start();
    expect(await worker.handle().call.add(5, 3)).toBe(8);
    expect(await worker.handle().call.pid()).toBe(expected.get("py-3"));
    await worker.stop();
    expect(services[6]!.child.exitCode).toBeNull(); // a parent's stop() leaves the service running

    for (const service of services) service.child.kill("SIGTERM");
    const exits = await Promise.all(services.map((s) => s.exited));
    expect(exits.filter((e, i) => i % 2 === 0).map((e) => e.code)).toEqual(Array(10).fill(0));
    expect(readRegistry(dir)).toEqual({});
  }, 40_000);

  it("forwards print() output to each connected parent, once per line, and not to its own stdout", async () => {
    const dir = registryDir();
    const service = start(PYTHON, [WORKER], { ...PY_ENV, MULTIFROST_REGISTRY_DIR: dir, MF_SERVICE_ID: "py-printer" });
    await waitFor(() => readRegistry(dir)["py-printer"]?.pid === service.child.pid, 10_000, "the service to register");
    const seen: string[][] = [[], []];
    const connected: ParentWorker[] = [];
    for (const lines of seen) {
      const worker = await ParentWorker.connect("py-printer", 5000, {
        registryDir: dir,
        onOutput: (stream: string, line: string) => lines.push(`${stream}: ${line}`),
      });
      parents.push(worker);
      connected.push(worker);
      await worker.start();
      await worker.handle().call.add(1, 1); // heard from: output goes to this parent too
    }
    expect(await connected[0]!.handle().call.print_lines("fwd", 4)).toBe(4);
    const expected = ["stdout: fwd 0", "stdout: fwd 1", "stdout: fwd 2", "stdout: fwd 3", "stderr: fwd err"];
    for (const lines of seen) {
      await waitFor(() => expected.every((line) => lines.includes(line)), 5000, "the forwarded lines");
    }
    await connected[0]!.ping(); // anything sent after the lines has arrived: no duplicate is on its way
    await connected[1]!.ping();
    for (const lines of seen) {
      for (const line of expected) expect(lines.filter((l) => l === line), line).toHaveLength(1);
    }
    expect(service.stdout()).not.toMatch(/fwd/);
    expect(service.stderr()).not.toMatch(/fwd/);
  }, 30_000);
});
