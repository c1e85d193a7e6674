/**
 * ParentWorker / ParentHandle against real node children over real sockets: calls, the call
 * proxy, errors, value encoding, argument checks, output forwarding, executables, volume.
 */
import { spawn as spawnProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { inspect } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  CallTimeoutError,
  EncodeError,
  InvalidArgumentError,
  ParentWorker,
  RemoteCallError,
  WorkerNotRunningError,
  type OutputStream,
} from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const PROBE = fixture("probe-worker.mjs");

interface OutputLine {
  stream: OutputStream;
  line: string;
  name: string;
}

/** Workers a test spawned; afterEach stops every one of them, pass or fail. */
const tracked = workerTracker();
const spawnWorker = tracked.spawn;
afterEach(() => tracked.stopAll());

// Two workers shared by the tests that only call (they never kill or stop them).
let math: ParentWorker;
let probe: ParentWorker;
const mathOutput: OutputLine[] = [];

beforeAll(async () => {
  math = ParentWorker.spawn(MATH, "node", {
    name: "calc",
    onOutput: (stream, line, name) => mathOutput.push({ stream, line, name }),
  });
  probe = ParentWorker.spawn(PROBE, "node", { onOutput: () => {} });
  await Promise.all([math.start(), probe.start()]);
});

afterAll(async () => {
  await Promise.all([math?.stop(), probe?.stop()]);
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by parent-worker tests");
});

describe("start and basic calls", () => {
  it("start() resolves after a real heartbeat round trip", () => {
    expect(math.state).toBe("connected");
    expect(math.isHealthy).toBe(true);
    expect(typeof math.lastHeartbeatRttMs).toBe("number");
    expect(math.lastHeartbeatRttMs).toBeGreaterThan(0);
    expect(math.lastHeartbeatRttMs).toBeLessThan(10_000);
    expect(typeof math.pid).toBe("number");
    expect(descendants()).toContain(math.pid);
    expect(math.port).toBeGreaterThanOrEqual(1024);
  });

  it("calls through worker.call, handle.call and callFunction reach the same child", async () => {
    const handle = math.handle();
    expect(await math.call.add(1, 2)).toBe(3);
    expect(await handle.call.add(1, 2)).toBe(3);
    expect(await math.callFunction("add", [1, 2])).toBe(3);
    expect(await math.callFunction("add", [20, 22], 5000)).toBe(42);
  });

  it("two handles share one worker process", async () => {
    const first = math.handle();
    const second = math.handle();
    expect(first.worker).toBe(math);
    expect(second.worker).toBe(math);
    const [pidA, pidB] = await Promise.all([first.call.pid(), second.call.pid()]);
    expect(pidA).toBe(math.pid);
    expect(pidB).toBe(math.pid);
    // start() through a handle of a running worker spawns nothing new.
    const before = descendants().length;
    await second.start();
    expect(descendants().length).toBe(before);
    expect(await second.call.pid()).toBe(math.pid);
  });

  it("ping() measures a heartbeat round trip", async () => {
    const rtt = await math.ping();
    expect(typeof rtt).toBe("number");
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(5000);
    expect(math.lastHeartbeatRttMs).toBe(rtt);
  });
});

describe("timeouts and per-call options", () => {
  it("withOptions({ timeout }) times out with CallTimeoutError and does not leak into later calls", async () => {
    const handle = math.handle();
    const started = Date.now();
    const error = await rejectionOf(handle.call.withOptions({ timeout: 200 }).sleep(2000));
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.code).toBe("ERR_CALL_TIMEOUT");
    expect(error.functionName).toBe("sleep");
    expect(error.timeoutMs).toBe(200);
    expect(error.message).toContain("'sleep'");
    expect(error.message).toContain("200ms");
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1500);
    // The plain proxy still uses the default timeout (30 s): 300 ms is fine.
    expect(await handle.call.sleep(300)).toBe(300);
    expect(await math.call.sleep(250)).toBe(250);
  });

  it("withOptions chains merge, and calls within the timeout resolve", async () => {
    const fast = math.call.withOptions({ timeout: 400 });
    expect(await fast.sleep(50)).toBe(50);
    const error = await rejectionOf(fast.withOptions({ namespace: "nowhere" }).add(1, 2));
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.timeoutMs).toBe(400); // the timeout came from the outer withOptions
    expect(await fast.add(2, 3)).toBe(5); // the namespace did not leak into `fast`
  });

  it("a call for another namespace is ignored by the child and times out naming the namespace", async () => {
    const before = ((await probe.call.rejected()) as Record<string, number>)["namespace-mismatch"] ?? 0;
    const error = await rejectionOf(probe.call.withOptions({ namespace: "other", timeout: 300 }).add(1, 2));
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.message).toContain("namespace 'other'");
    expect(error.functionName).toBe("add");
    const after = ((await probe.call.rejected()) as Record<string, number>)["namespace-mismatch"] ?? 0;
    expect(after).toBe(before + 1);
    // callFunction's namespace argument behaves the same.
    const viaCallFunction = await rejectionOf(probe.callFunction("add", [1, 2], 300, "other"));
    expect(viaCallFunction).toBeInstanceOf(CallTimeoutError);
    expect(viaCallFunction.message).toContain("namespace 'other'");
  });

  it("a reply arriving after its call timed out is counted as unmatched, not delivered", async () => {
    const before = probe.stats.unmatchedReplies;
    const error = await rejectionOf(probe.call.withOptions({ timeout: 100 }).sleep(400));
    expect(error).toBeInstanceOf(CallTimeoutError);
    await waitFor(() => probe.stats.unmatchedReplies === before + 1, 5000, "the late reply to be counted");
    expect(await probe.call.add(1, 1)).toBe(2);
  });

  it("the defaultTimeout option applies to plain calls; Infinity disables it per call", async () => {
    const worker = spawnWorker(MATH, "node", { defaultTimeout: 250 });
    expect(worker.defaultTimeout).toBe(250);
    await worker.start();
    const error = await rejectionOf(worker.call.sleep(600));
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.timeoutMs).toBe(250);
    expect(await worker.call.withOptions({ timeout: Infinity }).sleep(400)).toBe(400);
  });
});

describe("the call proxy", () => {
  it("is not thenable, and awaiting, stringifying or inspecting it sends no call", async () => {
    const handle = probe.handle();
    const receivedBefore = (await probe.call.received()) as number;
    const sentBefore = probe.stats.callsSent;

    expect(typeof handle.call.then).toBe("undefined");
    expect(typeof (handle.call as any).catch).toBe("undefined");
    expect(typeof (handle.call as any).finally).toBe("undefined");
    expect(await handle.call).toBe(handle.call);
    expect(await probe.call).toBe(probe.call);
    expect(String(handle.call)).toBe("[object MultifrostCallProxy]");
    expect(`${handle.call}`).toBe("[object MultifrostCallProxy]");
    expect((handle.call as any)[Symbol.iterator]).toBeUndefined();
    expect((handle.call as any)[Symbol.asyncIterator]).toBeUndefined();
    expect((handle.call as any)[Symbol.toPrimitive]).toBeUndefined();
    expect((handle.call as any)[inspect.custom]).toBeUndefined();
    expect(typeof inspect(handle.call)).toBe("string");
    expect(typeof inspect(handle.call.withOptions({ timeout: 100 }), { showHidden: true, depth: 5 })).toBe("string");
    expect(JSON.stringify(handle.call)).toBe("{}");
    expect(() => {
      (handle.call as any).injected = 1;
    }).toThrow(TypeError);
    // A property read alone is no call; the same function comes back every time.
    expect(typeof handle.call.someFunction).toBe("function");
    expect(handle.call.someFunction).toBe(handle.call.someFunction);

    // Nothing above reached the wire: the only extra call is `received()` itself.
    expect(probe.stats.callsSent).toBe(sentBefore);
    expect(await probe.call.received()).toBe(receivedBefore + 1);
    expect(probe.stats.callsSent).toBe(sentBefore + 1);
  });
});

describe("remote errors and what is callable", () => {
  it("a throwing function rejects with RemoteCallError carrying type, message and stack", async () => {
    const error = await rejectionOf(math.call.fail("bad input"));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.code).toBe("ERR_REMOTE_CALL");
    expect(error.remoteType).toBe("TypeError");
    expect(error.remoteMessage).toBe("bad input");
    expect(error.message).toBe("TypeError: bad input");
    expect(error.functionName).toBe("fail");
    expect(typeof error.remoteStack).toBe("string");
    expect(error.remoteStack).toContain("TypeError: bad input");
    expect(error.remoteStack).toMatch(/\n\s+at .*fail/);
    expect(error.remoteStack).toContain("math-worker.mjs");
    // The worker keeps serving after a failed call.
    expect(await math.call.add(2, 2)).toBe(4);
  });

  it("async rejections, custom error names and non-Error throws keep their type and message", async () => {
    const asyncError = await rejectionOf(probe.call.failAsync("out of range"));
    expect(asyncError).toBeInstanceOf(RemoteCallError);
    expect(asyncError.remoteType).toBe("RangeError");
    expect(asyncError.remoteMessage).toBe("out of range");
    expect(asyncError.remoteStack).toMatch(/\n\s+at /);

    const custom = await rejectionOf(probe.call.throwCustom("bad email"));
    expect(custom.remoteType).toBe("ValidationError");
    expect(custom.remoteMessage).toBe("bad email");

    const thrownString = await rejectionOf(probe.call.throwValue("plain string"));
    expect(thrownString).toBeInstanceOf(RemoteCallError);
    expect(thrownString.remoteType).toBe("Error");
    expect(thrownString.remoteMessage).toBe("plain string");
    expect(thrownString.remoteStack).toBeUndefined();
  });

  it("a result the wire cannot carry becomes a RemoteCallError, and the worker keeps serving", async () => {
    for (const [kind, problem] of [
      ["map", /map keys must be strings/],
      ["function", /functions cannot be sent/],
      ["bigint", /64 bits/],
    ] as const) {
      const error = await rejectionOf(probe.call.badResult(kind));
      expect(error, kind).toBeInstanceOf(RemoteCallError);
      expect(error.remoteType, kind).toBe("EncodeError");
      expect(error.remoteMessage, kind).toMatch(problem);
      expect(error.remoteMessage, kind).toContain("result");
    }
    expect(await probe.call.add(1, 2)).toBe(3);
  });

  it("a missing function rejects with RemoteCallError saying it was not found", async () => {
    const error = await rejectionOf(math.call.doesNotExist(1));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.message).toMatch(/not found/);
    expect(error.message).toContain("doesNotExist");
    expect(error.functionName).toBe("doesNotExist");
  });

  it("a _private method is refused", async () => {
    for (const call of [math.call._hidden(), math.callFunction("_hidden"), math.callFunction("__proto__")]) {
      const error = await rejectionOf(call);
      expect(error).toBeInstanceOf(RemoteCallError);
      expect(error.message).toContain("Cannot call private method");
    }
  });

  it("ChildWorker and Object members are not callable", async () => {
    for (const name of ["run", "stop", "constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf", "stats"]) {
      const error = await rejectionOf(math.callFunction(name));
      expect(error, name).toBeInstanceOf(RemoteCallError);
      expect(error.message, name).toMatch(/not found/);
      expect(error.message, name).toContain(`'${name}'`);
    }
  });

  it("listFunctions returns exactly the fixture's public methods", async () => {
    const expected = ["add", "echo", "exit", "fail", "nothing", "pid", "print", "sleep", "typeOf"];
    expect(await math.callFunction("listFunctions")).toEqual(expected);
    expect(await math.call.listFunctions()).toEqual(expected);
    expect(await math.callFunction("list_functions")).toEqual(expected);
  });
});

describe("values on the wire", () => {
  it("refuses values the wire cannot carry before sending anything", async () => {
    const before = math.stats.callsSent;
    const mapError = await rejectionOf(math.call.echo(new Map([[1, 2]])));
    expect(mapError).toBeInstanceOf(EncodeError);
    expect(mapError.code).toBe("ERR_ENCODE");
    expect(mapError.path).toBe("args[0]");
    expect(mapError.message).toMatch(/map keys must be strings/);

    const fnError = await rejectionOf(math.call.echo(() => 1));
    expect(fnError).toBeInstanceOf(EncodeError);
    expect(fnError.message).toMatch(/function/);

    const nestedFn = await rejectionOf(math.call.echo({ user: { save: () => 1 } }));
    expect(nestedFn).toBeInstanceOf(EncodeError);
    expect(nestedFn.path).toBe("args[0].user.save");

    const symbolError = await rejectionOf(math.call.echo(Symbol("s")));
    expect(symbolError).toBeInstanceOf(EncodeError);

    for (const big of [2n ** 64n, -(2n ** 63n) - 1n, 10n ** 30n]) {
      const error = await rejectionOf(math.call.echo(big));
      expect(error, String(big)).toBeInstanceOf(EncodeError);
      expect(error.message).toMatch(/64 bits/);
    }
    expect(math.stats.callsSent).toBe(before);
    expect(math.pendingCalls).toBe(0);
  });

  it("round trips numbers, 64-bit integers, bytes, nested objects, unicode and null", async () => {
    const echo = async (value: unknown): Promise<unknown> => math.call.echo(value);

    expect(await echo(2 ** 40)).toBe(2 ** 40);
    expect(await math.call.typeOf(2 ** 40)).toBe("number");
    expect(await echo(-(2 ** 40))).toBe(-(2 ** 40));
    expect(await echo(2 ** 31)).toBe(2 ** 31);
    expect(await echo(1.5)).toBe(1.5);
    expect(await echo(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);

    for (const big of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n]) {
      expect(await echo(big)).toBe(big);
      expect(await math.call.typeOf(big)).toBe("bigint");
    }

    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const bytesBack = (await echo(bytes)) as Uint8Array;
    expect(bytesBack).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(bytesBack).equals(bytes)).toBe(true);
    expect(await math.call.typeOf(bytes)).toBe("bytes");

    const nested = { name: "x", list: [1, "two", { three: [3, null, true] }], deep: { a: { b: { c: "d" } } }, empty: {}, none: [] };
    expect(await echo(nested)).toEqual(nested);

    const unicode = "héllo wörld — 日本語 🚀 \u0000 end";
    expect(await echo(unicode)).toBe(unicode);
    expect(await echo({ "ключ 🔑": "значение" })).toEqual({ "ключ 🔑": "значение" });

    expect(await echo(null)).toBeNull();
    expect(await math.call.typeOf(null)).toBe("null");
    expect(await echo(undefined)).toBeNull();
    expect(await math.call.typeOf(undefined)).toBe("null");
    expect(await math.call.nothing()).toBeNull();
    expect(await echo(new Map([["k", 1]]))).toEqual({ k: 1 });
    expect(await echo(true)).toBe(true);
    expect(await echo([])).toEqual([]);
  });

  it("1000 concurrent calls all get their own answer", async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => math.call.add(i, i)));
    results.forEach((result, i) => expect(result).toBe(2 * i));
    expect(math.pendingCalls).toBe(0);
  });

  it("a 1 MiB Buffer round trips identically", async () => {
    const payload = randomBytes(1024 * 1024);
    const back = (await math.call.echo(payload)) as Uint8Array;
    expect(back.byteLength).toBe(payload.byteLength);
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(payload)).toBe(true);
  });
});

describe("invalid arguments and not-running workers", () => {
  it("rejects bad timeouts with InvalidArgumentError without sending", async () => {
    const before = math.stats.callsSent;
    for (const timeout of [0, -1, "x", Number.NaN, -Infinity]) {
      const viaOptions = await rejectionOf(math.call.withOptions({ timeout: timeout as number }).add(1, 2));
      expect(viaOptions, String(timeout)).toBeInstanceOf(InvalidArgumentError);
      expect(viaOptions.code).toBe("ERR_INVALID_ARGUMENT");
      const viaCallFunction = await rejectionOf(math.callFunction("add", [1, 2], timeout as number));
      expect(viaCallFunction, String(timeout)).toBeInstanceOf(InvalidArgumentError);
    }
    expect(await rejectionOf(math.callFunction(""))).toBeInstanceOf(InvalidArgumentError);
    expect(await rejectionOf(math.callFunction("add", "1,2" as unknown as unknown[]))).toBeInstanceOf(InvalidArgumentError);
    expect(math.stats.callsSent).toBe(before);
  });

  it("spawn() refuses a missing script, an empty executable and a bad defaultTimeout", () => {
    expect(() => ParentWorker.spawn("")).toThrow(InvalidArgumentError);
    expect(() => ParentWorker.spawn(MATH, [])).toThrow(InvalidArgumentError);
    expect(() => ParentWorker.spawn(MATH, "   ")).toThrow(InvalidArgumentError);
    expect(() => ParentWorker.spawn(MATH, "node", { defaultTimeout: 0 })).toThrow(InvalidArgumentError);
    expect(() => ParentWorker.spawn(MATH, "node", { defaultTimeout: -5 })).toThrow(InvalidArgumentError);
  });

  it("calls before start() and after stop() reject with WorkerNotRunningError", async () => {
    const worker = spawnWorker(MATH);
    const handle = worker.handle();
    expect(worker.state).toBe("idle");
    const early = await rejectionOf(handle.call.add(1, 2));
    expect(early).toBeInstanceOf(WorkerNotRunningError);
    expect(early.code).toBe("ERR_WORKER_NOT_RUNNING");
    expect(early.message).toContain("idle");
    expect(await rejectionOf(worker.callFunction("add", [1, 2]))).toBeInstanceOf(WorkerNotRunningError);
    expect(await rejectionOf(worker.ping())).toBeInstanceOf(WorkerNotRunningError);
    expect(worker.pid).toBeUndefined();
    expect(worker.stats.callsSent).toBe(0);

    await handle.start();
    expect(await handle.call.add(1, 2)).toBe(3);
    await handle.stop();
    expect(worker.state).toBe("stopped");
    const late = await rejectionOf(handle.call.add(1, 2));
    expect(late).toBeInstanceOf(WorkerNotRunningError);
    expect(late.message).toContain("stopped");
    expect(await rejectionOf(worker.call.add(1, 2))).toBeInstanceOf(WorkerNotRunningError);
    expect(await rejectionOf(worker.ping())).toBeInstanceOf(WorkerNotRunningError);
  });
});

describe("output", () => {
  it("child stdout/stderr lines reach onOutput with the worker name, and the stdout/stderr events", async () => {
    const events: OutputLine[] = [];
    const onStdout = (line: string): void => void events.push({ stream: "stdout", line, name: "" });
    const onStderr = (line: string): void => void events.push({ stream: "stderr", line, name: "" });
    math.on("stdout", onStdout);
    math.on("stderr", onStderr);
    try {
      const text = `hello-${process.pid}-${Date.now()}`;
      expect(await math.call.print(text)).toBe(true);
      await waitFor(
        () => mathOutput.some((o) => o.line === `err:${text}`) && mathOutput.some((o) => o.line === text),
        5000,
        "both output lines",
      );
      expect(mathOutput).toContainEqual({ stream: "stdout", line: text, name: "calc" });
      expect(mathOutput).toContainEqual({ stream: "stderr", line: `err:${text}`, name: "calc" });
      await waitFor(() => events.length >= 2, 5000, "stdout and stderr events");
      expect(events.map(({ stream, line }) => [stream, line]).sort()).toEqual([
        ["stderr", `err:${text}`],
        ["stdout", text],
      ]);
    } finally {
      math.off("stdout", onStdout);
      math.off("stderr", onStderr);
    }
  });

  it("without onOutput, lines are printed as [<name> STDOUT]: <line> and [<name> STDERR]: <line>", async () => {
    const text = `default-format-${Date.now()}`;
    const parent = spawnProcess(process.execPath, [fixture("default-output-parent.mjs"), MATH, text], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let stdout = "";
      let stderr = "";
      parent.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      parent.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      const [code] = (await once(parent, "close")) as [number | null];
      expect(code, stderr).toBe(0);
      expect(stdout.split("\n")).toContain(`[math-worker.mjs STDOUT]: ${text}`);
      expect(stderr.split("\n")).toContain(`[math-worker.mjs STDERR]: err:${text}`);
      expect(stdout).not.toContain("STDERR");
    } finally {
      if (parent.exitCode === null && parent.signalCode === null) parent.kill("SIGKILL");
    }
  });
});

describe("executables", () => {
  it("accepts an argv array and a multi-word string, and passes the extra arguments to node", async () => {
    const asArray = spawnWorker(PROBE, ["node", "--no-warnings"]);
    const asString = spawnWorker(PROBE, "node --no-warnings --max-old-space-size=256");
    await Promise.all([asArray.start(), asString.start()]);
    expect(asArray.argv[0]).toBe(process.execPath);
    expect(await asArray.call.execArgv()).toEqual(["--no-warnings"]);
    expect(await asString.call.execArgv()).toEqual(["--no-warnings", "--max-old-space-size=256"]);
    expect(await asArray.call.add(2, 3)).toBe(5);
    expect(await asString.call.add(2, 3)).toBe(5);
  });

  it("keeps a script path containing spaces whole", async () => {
    const script = fixture("spaced name worker.mjs");
    const worker = spawnWorker(script);
    await worker.start();
    expect(worker.name).toBe("spaced name worker.mjs");
    expect(await worker.call.script()).toBe(script);
  });

  it("passes options.args after the script and options.env into the child", async () => {
    const worker = spawnWorker(PROBE, "node", { args: ["--worker"], env: { MF_TEST_VALUE: "42" } });
    await worker.start();
    expect(worker.argv.slice(-2)).toEqual([PROBE, "--worker"]);
    expect(await worker.call.argv()).toEqual(["--worker"]);
    expect(await worker.call.env("MF_TEST_VALUE")).toBe("42");
    expect(await worker.call.env("COMLINK_ZMQ_PORT")).toBe(String(worker.port));
    expect(await worker.call.env("COMLINK_WORKER_MODE")).toBe("1");
  });
});

describe("what the parent accepts from a child", () => {
  it("drops garbage from the child and reads the message variants v4 peers send", async () => {
    const lines: OutputLine[] = [];
    const worker = spawnWorker(fixture("fake-child.mjs"), "node", {
      name: "fake",
      clientName: "tester",
      onOutput: (stream, line, name) => lines.push({ stream, line, name }),
    });
    await worker.start(); // only the valid heartbeat reply (not the wrong-app one) made it ready
    expect(worker.state).toBe("connected");
    expect(worker.stats.rejected).toEqual({ undecodable: 1, "not-a-map": 1, "wrong-app": 1 });
    expect(worker.stats.unmatchedReplies).toBe(1);
    expect(lines).toEqual([
      { stream: "stdout", line: "forwarded over the wire", name: "fake" },
      { stream: "stderr", line: "forwarded error line", name: "fake" },
    ]);

    const python = await rejectionOf(worker.call.pythonError());
    expect(python).toBeInstanceOf(RemoteCallError);
    expect(python.remoteType).toBe("ValueError");
    expect(python.remoteMessage).toBe("bad value");
    expect(python.message).toBe("ValueError: bad value");
    expect(python.remoteStack).toMatch(/^Traceback \(most recent call last\):/);
    expect(python.remoteStack).toContain('File "worker.py", line 3');

    const bare = await rejectionOf(worker.call.bareError());
    expect(bare).toBeInstanceOf(RemoteCallError);
    expect(bare.remoteType).toBe("Error");
    expect(bare.remoteMessage).toBe("something broke");

    expect(await worker.call.noResult()).toBeNull();

    const unmatched = worker.stats.unmatchedReplies;
    expect(await worker.call.duplicate()).toBe("first");
    await waitFor(() => worker.stats.unmatchedReplies === unmatched + 1, 5000, "the duplicate reply to be counted");

    expect(await worker.call.camelClient()).toBe("tester");
    expect(await worker.call.withOptions({ clientName: "other" }).camelClient()).toBe("other");

    const exit = once(worker, "exit");
    await worker.stop();
    expect(((await exit) as [{ code: number | null }])[0].code).toBe(0);
  });
});
