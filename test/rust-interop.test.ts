/**
 * TS ↔ Rust over real sockets, both directions and both modes, against the project's own Rust
 * v4 peer (test/rust-peer, binary mf_rust_peer, written from the spec with the `zmq` and `rmpv`
 * crates). The binary is built by `bash scripts/build-rust-peer.sh`, never by this file; when it
 * is missing every test here fails with that instruction (nothing is skipped).
 *
 *  - TS parent → Rust child, spawn mode (COMLINK_ZMQ_PORT) and connect mode (`child --bind`
 *    prints `PORT <n>`; the test registers that port under the child's pid in a temporary
 *    registry and `ParentWorker.connect()` finds it there).
 *  - Rust parent → TS child in spawn mode (`mf_rust_peer parent`, 19 cases) and → TS service in
 *    connect mode (`mf_rust_peer connect --service`, which reads the registry the v4 way; 18 cases).
 *  - Rust parent → our Python worker library (python/), spawn and connect mode, the same cases.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  FileRegistry,
  ParentWorker,
  RemoteCallError,
  WorkerExitedError,
  type DynamicFunctions,
} from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import {
  type InteropCalls,
  CONFORMANCE_CASES,
  expectInt64Limits,
  expectMiBRoundTrip,
  expectMissingAndPrivateRefused,
  expectNamespaceMismatchNamed,
  expectNestedUnicodeBytes,
  expectNonStringKeysRefused,
  expectPipelined,
  expectPrimitiveTypes,
  expectSurvivesGarbage,
  MSGPACK_TYPES,
} from "./helpers/interop-vectors.js";
import { descendants, isAlive, reapAll, waitFor } from "./helpers/processes.js";
import { serviceHarness } from "./helpers/services.js";

const RUST_PEER = fileURLToPath(new URL("./rust-peer/target/release/mf_rust_peer", import.meta.url));
const TS_WORKER = fixture("math-worker.mjs");
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_LIB_WORKER = fixture("python-lib/interop_worker.py");
const PY_ENV = { PYTHONPATH: [fileURLToPath(new URL("../python/src", import.meta.url)), process.env.PYTHONPATH].filter(Boolean).join(":") };

/** The binary's path; throws (failing the test) when it has not been built. */
function rustPeer(): string {
  if (!existsSync(RUST_PEER)) {
    throw new Error(`${RUST_PEER} is missing: run \`bash scripts/build-rust-peer.sh\` (needs cargo; installs libzmq3-dev and pkg-config as root)`);
  }
  return RUST_PEER;
}

/** Processes started by a test directly (not by a ParentWorker): reaped after each test. */
const started: ChildProcess[] = [];
afterEach(async () => {
  // SIGTERM first: a Rust parent then stops its own child; reapAll SIGKILLs what is left.
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  await Promise.race([
    Promise.all(started.map((child) => (child.exitCode === null && child.signalCode === null ? once(child, "close") : undefined))),
    new Promise((resolve) => setTimeout(resolve, 8000)),
  ]);
  await reapAll(started);
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

function quiet(): { lines: string[]; onOutput: (stream: string, line: string) => void } {
  const lines: string[] = [];
  return { lines, onOutput: (stream, line) => lines.push(`${stream}: ${line}`) };
}

/** Starts `mf_rust_peer child --bind …` and resolves with the process and the port it printed. */
async function startBoundRustChild(args: string[] = []): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  const child = spawn(rustPeer(), ["child", "--bind", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`mf_rust_peer child --bind exited early (${child.exitCode}): ${stderr}`);
      return /^PORT \d+$/m.test(stdout);
    },
    10_000,
    "the Rust child's PORT line",
  );
  return { child, port: Number(/^PORT (\d+)$/m.exec(stdout)![1]), stderr: () => stderr };
}

interface CaseRecord {
  case: string;
  ok: boolean;
  detail: string;
}

/** Runs mf_rust_peer in a parent role and collects its JSON lines. */
async function runRustParent(args: string[], env: Record<string, string> = {}): Promise<{ cases: CaseRecord[]; done?: { passed: number; failed: number }; code: number | null; stderr: string }> {
  const child = spawn(rustPeer(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  started.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, "close")) as [number | null];
  const cases: CaseRecord[] = [];
  let done: { passed: number; failed: number } | undefined;
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as Partial<CaseRecord> & { done?: boolean; passed?: number; failed?: number };
    if (record.done) done = { passed: record.passed!, failed: record.failed! };
    else if (record.case) cases.push({ case: record.case, ok: record.ok!, detail: record.detail ?? "" });
  }
  return { cases, done, code, stderr };
}


/**
 * The vectors of cross-language.test.ts's "TS parent → Python child", against the Rust child.
 * The Rust child names msgpack families in `type_of` (nil, bool, int, float, str, bin, array,
 * map), always sends `result` (nil for nothing) and sends errors as "<Type>: <message>".
 */
function callVectors(get: () => { worker: ParentWorker; output: ReturnType<typeof quiet>; pid: number }): void {
  it("is ready after a real heartbeat and answers calls", async () => {
    const { worker } = get();
    expect(worker.state).toBe("connected");
    expect(typeof worker.lastHeartbeatRttMs).toBe("number");
    expect(await worker.handle().call.add(1, 2)).toBe(3);
    expect(await worker.handle().call.multiply(2.5, 4)).toBe(10);
    expect(await worker.ping()).toBeGreaterThan(0);
    expect(await worker.handle().call.get_info()).toEqual({ language: "rust", pid: get().pid, namespace: "default" });
  });

  it("round-trips primitives with the right msgpack types", async () => {
    const call = get().worker.handle<InteropCalls & DynamicFunctions>().call;
    await expectPrimitiveTypes(call, MSGPACK_TYPES);
    expect(await call.echo_many(1, "two", null, [3])).toEqual([1, "two", null, [3]]);
    expect(await call.add(2 ** 40, 1)).toBe(2 ** 40 + 1); // integer arithmetic in Rust, not f64
  });

  it("round-trips nested structures, unicode and bytes", async () => {
    await expectNestedUnicodeBytes(get().worker.handle<InteropCalls>().call);
  });

  it("carries int64 and uint64 limits exactly", async () => {
    await expectInt64Limits(get().worker.handle<InteropCalls>().call);
  });

  it("reads a nil result as null", async () => {
    const call = get().worker.handle().call;
    expect(await call.none()).toBeNull();
    expect(await call.echo(null)).toBeNull();
  });

  it("turns Rust errors into RemoteCallError with type and message", async () => {
    const error = await get().worker.handle().call.fail("boom").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteCallError);
    const remote = error as RemoteCallError;
    expect(remote.remoteType).toBe("ValueError");
    expect(remote.remoteMessage).toBe("boom");
    expect(remote.functionName).toBe("fail");
    const wrongArgs = await get().worker.handle().call.add(1).catch((e: unknown) => e);
    expect(wrongArgs).toBeInstanceOf(RemoteCallError);
    expect((wrongArgs as RemoteCallError).remoteType).toBe("TypeError");
  });

  it("reports missing and private functions as remote errors", async () => {
    await expectMissingAndPrivateRefused(get().worker);
  });

  it("refuses a Map with non-string keys before sending", async () => {
    await expectNonStringKeysRefused(get().worker);
  });

  it("times out a namespace mismatch with an error naming the namespace", async () => {
    await expectNamespaceMismatchNamed(get().worker);
  });

  it("pipelines 250 calls and returns each result to its caller", async () => {
    await expectPipelined(get().worker);
  });

  it("moves a 1 MiB payload both ways", async () => {
    await expectMiBRoundTrip(get().worker);
  });

  it("overlaps 5 slow calls and answers heartbeats meanwhile", async () => {
    const { worker } = get();
    const t0 = Date.now();
    const sleeps = Array.from({ length: 5 }, () => worker.handle().call.sleep(0.4));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const rtt = await worker.ping();
    expect(rtt).toBeLessThan(300);
    expect(await Promise.all(sleeps)).toEqual([0.4, 0.4, 0.4, 0.4, 0.4]);
    expect(Date.now() - t0).toBeLessThan(1500); // one at a time would take 2 s
  });

  it("survives garbage, stray and duplicate frames from the child, and prints forwarded output", async () => {
    await expectSurvivesGarbage(get().worker, get().output.lines);
  });

  it("lists the Rust worker's functions", async () => {
    const names = (await get().worker.callFunction("list_functions")) as string[];
    expect(names).toContain("add");
    expect(names).not.toContain("_private");
    expect(names).not.toContain("list_functions");
  });
}

describe("the Rust peer binary", () => {
  it("is built (bash scripts/build-rust-peer.sh)", () => {
    expect(existsSync(rustPeer())).toBe(true);
  });
});

describe("TS parent → Rust child, spawn mode", () => {
  let worker: ParentWorker | undefined;
  let setupError: unknown;
  const output = quiet();

  beforeAll(async () => {
    // A set-up failure is rethrown by every test (a throwing beforeAll would mark them skipped).
    try {
      worker = ParentWorker.spawn("child", [rustPeer()], { name: "rust", onOutput: output.onOutput });
      await worker.start();
    } catch (error) {
      setupError = error;
    }
  });
  afterAll(async () => {
    await worker?.stop();
  });

  callVectors(() => {
    if (setupError !== undefined) throw setupError;
    return { worker: worker!, output, pid: worker!.pid! };
  });
});

describe("TS parent → Rust child, connect mode (child --bind, registered by the test)", () => {
  let worker: ParentWorker | undefined;
  let service: ChildProcess | undefined;
  let registryDir = "";
  let setupError: unknown;
  const output = quiet();

  beforeAll(async () => {
    registryDir = mkdtempSync(join(tmpdir(), "multifrost-rust-"));
    try {
      const bound = await startBoundRustChild();
      service = bound.child;
      started.splice(started.indexOf(service), 1); // lives for the whole describe; reaped in afterAll
      await new FileRegistry({ dir: registryDir }).register("rust-service", bound.port, service.pid!);
      worker = await ParentWorker.connect("rust-service", 5000, { registryDir, onOutput: output.onOutput });
      await worker.start();
    } catch (error) {
      setupError = error;
    }
  });
  const ready = (): { worker: ParentWorker; output: ReturnType<typeof quiet>; pid: number } => {
    if (setupError !== undefined) throw setupError;
    return { worker: worker!, output, pid: service!.pid! };
  };
  afterAll(async () => {
    await worker?.stop();
    if (service) {
      const alive = isAlive(service.pid!);
      service.kill("SIGTERM");
      await Promise.race([service.exitCode === null ? once(service, "close") : undefined, new Promise((resolve) => setTimeout(resolve, 3000))]);
      await reapAll([service]);
      expect(alive, "a connect-mode parent's stop() must leave the service running").toBe(true);
    }
    if (registryDir) rmSync(registryDir, { recursive: true, force: true });
  });

  callVectors(ready);

  it("serves 3 more parents at once, each reply to its own caller", async () => {
    const { pid } = ready();
    const others = await Promise.all(
      [0, 1, 2].map(() => ParentWorker.connect("rust-service", 5000, { registryDir, onOutput: () => undefined })),
    );
    try {
      await Promise.all(others.map((other) => other.start()));
      const results = await Promise.all(
        others.map((other, p) => Promise.all(Array.from({ length: 200 }, (_, i) => other.call.add(p * 1_000_000, i)))),
      );
      results.forEach((values, p) => expect(values).toEqual(Array.from({ length: 200 }, (_, i) => p * 1_000_000 + i)));
      for (const other of others) expect(other.stats.unmatchedReplies).toBe(0);
    } finally {
      await Promise.all(others.map((other) => other.stop()));
    }
    expect(isAlive(pid)).toBe(true);
  });

  it("exits 0 on SIGTERM", async () => {
    // A second bound child, so the shared one stays up for the tests above.
    const { child } = await startBoundRustChild();
    child.kill("SIGTERM");
    const [code] = (await once(child, "close")) as [number | null];
    expect(code).toBe(0);
  });
});

describe("TS parent → Rust child: lifecycle", () => {
  let worker: ParentWorker | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
  });

  it("rejects pending calls at once when the Rust child is killed", async () => {
    worker = ParentWorker.spawn("child", [rustPeer()], { name: "rust", onOutput: () => undefined, defaultTimeout: 60_000 });
    await worker.start();
    const pending = worker.handle().call.sleep(30);
    await waitFor(() => worker!.pendingCalls === 1, 5000, "the call to be pending");
    process.kill(worker.pid!, "SIGKILL");
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerExitedError);
    expect((error as WorkerExitedError).signal).toBe("SIGKILL");
    expect(worker.state).toBe("failed");
  });

  it("stops the Rust child with a shutdown message and leaves nothing behind", async () => {
    worker = ParentWorker.spawn("child", [rustPeer()], { name: "rust", onOutput: () => undefined });
    const exits: (number | null)[] = [];
    worker.on("exit", (exit) => exits.push(exit.code));
    await worker.start();
    const pid = worker.pid!;
    await worker.stop();
    expect(exits).toEqual([0]);
    expect(isAlive(pid)).toBe(false);
  });

  it("fails start() clearly when the Rust child cannot start", async () => {
    worker = ParentWorker.spawn("no-such-role", [rustPeer()], { name: "rust", onOutput: () => undefined });
    const error = await worker.start().catch((e: unknown) => e);
    expect((error as Error).name).toBe("WorkerStartError");
    expect((error as Error).message).toMatch(/exited with code 2/);
    expect((error as Error).message).toMatch(/invalid choice|usage/);
  });

  it("exits 1 with a FATAL line when COMLINK_ZMQ_PORT is missing or invalid", () => {
    for (const port of [undefined, "80", "70000", "abc"]) {
      const env = { ...process.env };
      delete env.COMLINK_ZMQ_PORT;
      if (port !== undefined) env.COMLINK_ZMQ_PORT = port;
      const run = spawnSync(rustPeer(), ["child"], { env, encoding: "utf8", timeout: 5000 });
      expect(run.status, String(port)).toBe(1);
      expect(run.stderr, String(port)).toMatch(port === undefined ? /^FATAL: COMLINK_ZMQ_PORT is not set/m : new RegExp(`^FATAL: invalid COMLINK_ZMQ_PORT '${port}'`, "m"));
    }
  });
});

describe("Rust parent → TS child, spawn mode", () => {
  it("passes every interop case the Rust parent runs", async () => {
    const { cases, done, code, stderr } = await runRustParent(["parent", "--exec", process.execPath, "--script", TS_WORKER]);
    const failed = cases.filter((c) => !c.ok);
    expect(failed, `failed cases:\n${JSON.stringify(failed, null, 2)}\nstderr:\n${stderr}`).toEqual([]);
    expect(cases.map((c) => c.case)).toEqual(CONFORMANCE_CASES);
    expect(done).toEqual({ passed: 19, failed: 0 });
    expect(code).toBe(0);
  }, 60_000);

  it("reports a worker that never answers as a failed 'ready' case and exits 1", async () => {
    const { cases, done, code } = await runRustParent(["parent", "--exec", process.execPath, "--script", fixture("exit-early.mjs"), "--timeout", "3"]);
    expect(cases.map((c) => [c.case, c.ok])).toEqual([["ready", false]]);
    expect(done).toEqual({ passed: 0, failed: 1 });
    expect(code).toBe(1);
  }, 30_000);
});

describe("Rust parent → TS service, connect mode", () => {
  const harness = serviceHarness("multifrost-rust-connect-");

  it("finds the service in the registry and passes every interop case but shutdown", async () => {
    const service = await harness.startService("ts-for-rust", process.execPath, [TS_WORKER]);
    const { cases, done, code, stderr } = await runRustParent(["connect", "--service", "ts-for-rust", "--registry-dir", harness.registryDir]);
    const failed = cases.filter((c) => !c.ok);
    expect(failed, `failed cases:\n${JSON.stringify(failed, null, 2)}\nstderr:\n${stderr}`).toEqual([]);
    expect(cases.map((c) => c.case)).toEqual(CONFORMANCE_CASES.filter((name) => name !== "shutdown"));
    expect(done).toEqual({ passed: 18, failed: 0 });
    expect(code).toBe(0);
    expect(isAlive(service.process.pid!)).toBe(true); // the Rust parent did not stop it
  }, 60_000);
});

describe("Rust parent → our Python worker library (python/, its TS-style test worker)", () => {
  const harness = serviceHarness("multifrost-rust-py-");

  it("spawn mode: passes every interop case", async () => {
    const { cases, done, code, stderr } = await runRustParent(
      ["parent", "--exec", PYTHON, "--script", PY_LIB_WORKER, "--script-arg", "ts-style"],
      PY_ENV,
    );
    const failed = cases.filter((c) => !c.ok);
    expect(failed, `failed cases:\n${JSON.stringify(failed, null, 2)}\nstderr:\n${stderr}`).toEqual([]);
    expect(cases.map((c) => c.case)).toEqual(CONFORMANCE_CASES);
    expect(done).toEqual({ passed: 19, failed: 0 });
    expect(code).toBe(0);
  }, 60_000);

  it("connect mode: finds the self-registered Python service and passes every case but shutdown", async () => {
    const service = await harness.startService("py-for-rust", PYTHON, [PY_LIB_WORKER, "ts-style"], PY_ENV);
    const { cases, done, code, stderr } = await runRustParent(["connect", "--service", "py-for-rust", "--registry-dir", harness.registryDir]);
    const failed = cases.filter((c) => !c.ok);
    expect(failed, `failed cases:\n${JSON.stringify(failed, null, 2)}\nstderr:\n${stderr}`).toEqual([]);
    expect(cases.map((c) => c.case)).toEqual(CONFORMANCE_CASES.filter((name) => name !== "shutdown"));
    expect(done).toEqual({ passed: 18, failed: 0 });
    expect(code).toBe(0);
    expect(isAlive(service.process.pid!)).toBe(true);
  }, 60_000);
});
