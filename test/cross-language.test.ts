import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ParentWorker,
  RemoteCallError,
  WorkerExitedError,
} from "../src/index.js";
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
  PYTHON_TYPES,
} from "./helpers/interop-vectors.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

/**
 * TS ↔ Python over real sockets, both directions, against the project's own Python v4 peer
 * (test/peer/mf_peer.py, written from the spec; it reproduces the Python v4 quirks: no `result`
 * key for None, "Type: msg\ntraceback" errors, rebuilt heartbeat metadata, strict map keys).
 * Debian's /usr/bin/python3 has python3-zmq and python3-msgpack; these tests never skip.
 */
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const TS_WORKER = fileURLToPath(new URL("./fixtures/math-worker.mjs", import.meta.url));

function quiet(): { lines: string[]; onOutput: (stream: string, line: string) => void } {
  const lines: string[] = [];
  return { lines, onOutput: (stream, line) => lines.push(`${stream}: ${line}`) };
}

describe("TS parent → Python child", () => {
  let worker: ParentWorker;
  const output = quiet();

  beforeAll(async () => {
    worker = ParentWorker.spawn(PEER, PYTHON, { args: ["child"], name: "py", onOutput: output.onOutput });
    await worker.start();
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it("is ready after a real heartbeat and answers calls", async () => {
    expect(worker.state).toBe("connected");
    expect(typeof worker.lastHeartbeatRttMs).toBe("number");
    const handle = worker.handle();
    expect(await handle.call.add(1, 2)).toBe(3);
    expect(await handle.call.multiply(2.5, 4)).toBe(10);
    expect(await worker.ping()).toBeGreaterThan(0);
  });

  it("round-trips primitives with the right Python types", async () => {
    await expectPrimitiveTypes(worker.handle<InteropCalls>().call, PYTHON_TYPES);
  });

  it("round-trips nested structures, unicode and bytes", async () => {
    await expectNestedUnicodeBytes(worker.handle<InteropCalls>().call);
  });

  it("carries int64 and uint64 limits exactly", async () => {
    await expectInt64Limits(worker.handle<InteropCalls>().call);
  });

  it("reads None as null, whether Python sends a result key or omits it", async () => {
    const call = worker.handle().call;
    expect(await call.none()).toBeNull(); // Python v4 drops the `result` key for None
    expect(await call.echo(null)).toBeNull();
  });

  it("turns Python exceptions into RemoteCallError with type, message and traceback", async () => {
    const error = await worker.handle().call.fail("boom").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteCallError);
    const remote = error as RemoteCallError;
    expect(remote.remoteType).toBe("ValueError");
    expect(remote.remoteMessage).toBe("boom");
    expect(remote.remoteStack).toMatch(/Traceback/);
    expect(remote.functionName).toBe("fail");
  });

  it("reports missing and private functions as remote errors", async () => {
    await expectMissingAndPrivateRefused(worker);
  });

  it("refuses a Map with non-string keys before sending (Python would drop the message)", async () => {
    await expectNonStringKeysRefused(worker);
  });

  it("times out a namespace mismatch with an error naming the namespace", async () => {
    await expectNamespaceMismatchNamed(worker);
  });

  it("pipelines 250 calls and returns each result to its caller", async () => {
    await expectPipelined(worker);
  });

  it("moves a 1 MiB payload both ways", async () => {
    await expectMiBRoundTrip(worker);
  });

  it("survives garbage, stray and duplicate frames from the child, and prints forwarded output", async () => {
    await expectSurvivesGarbage(worker, output.lines);
  });

  it("lists the Python worker's functions", async () => {
    const names = (await worker.callFunction("list_functions")) as string[];
    expect(names).toContain("add");
    expect(names).not.toContain("_private");
  });
});

describe("TS parent → Python child: lifecycle", () => {
  let worker: ParentWorker | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
  });

  it("rejects pending calls at once when the Python child is killed", async () => {
    worker = ParentWorker.spawn(PEER, PYTHON, { args: ["child"], onOutput: () => undefined, defaultTimeout: 60_000 });
    await worker.start();
    const pending = worker.handle().call.sleep(30);
    await waitFor(() => worker!.pendingCalls === 1, 5000, "the call to be pending");
    process.kill(worker.pid!, "SIGKILL");
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerExitedError);
    expect((error as WorkerExitedError).signal).toBe("SIGKILL");
    expect(worker.state).toBe("failed");
  });

  it("stops the Python child with a shutdown message and leaves nothing behind", async () => {
    worker = ParentWorker.spawn(PEER, PYTHON, { args: ["child"], onOutput: () => undefined });
    const exits: (number | null)[] = [];
    worker.on("exit", (exit) => exits.push(exit.code));
    await worker.start();
    const pid = worker.pid!;
    await worker.stop();
    expect(exits).toEqual([0]);
    expect(isAlive(pid)).toBe(false);
  });

  it("fails start() clearly when the Python child cannot start", async () => {
    // An unknown role makes the peer's argparse exit 2 with a usage line on stderr.
    worker = ParentWorker.spawn(PEER, PYTHON, { args: ["no-such-role"], onOutput: () => undefined });
    const error = await worker.start().catch((e: unknown) => e);
    expect((error as Error).name).toBe("WorkerStartError");
    expect((error as Error).message).toMatch(/exited with code 2/);
    expect((error as Error).message).toMatch(/invalid choice|usage/);
  });
});

describe("Python parent → TS child", () => {
  it("passes every interop case the Python v4-style parent runs", async () => {
    const cases: { case: string; ok: boolean; detail: string }[] = [];
    let done: { passed: number; failed: number } | undefined;
    const stderr: string[] = [];
    const child = spawn(PYTHON, [PEER, "parent", "--exec", process.execPath, "--script", TS_WORKER], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr.push(chunk));
    let buffered = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line.startsWith("{")) continue;
        const record = JSON.parse(line) as { case?: string; ok?: boolean; detail?: string; done?: boolean; passed?: number; failed?: number };
        if (record.done) done = { passed: record.passed!, failed: record.failed! };
        else if (record.case) cases.push({ case: record.case, ok: record.ok!, detail: record.detail ?? "" });
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const failed = cases.filter((c) => !c.ok);
    expect(failed, `failed cases:\n${JSON.stringify(failed, null, 2)}\nstderr:\n${stderr.join("")}`).toEqual([]);
    expect(cases.map((c) => c.case)).toEqual(CONFORMANCE_CASES);
    expect(done).toEqual({ passed: 19, failed: 0 });
    expect(code).toBe(0);
  }, 60_000);
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});
