/**
 * Connect mode through the file registry, with real processes: a TS service reached by TS and
 * Python parents, a Python service reached by a TS parent, many parents on one service,
 * duplicate service ids, a parent's stop() never stopping the service, and a service in a
 * non-default namespace.
 * Every test uses a temporary registry directory, never ~/.multifrost.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { CallTimeoutError, ParentWorker, ServiceNotFoundError, WorkerStartError } from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";
import { serviceHarness, type Service } from "./helpers/services.js";

const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));
const MATH = fixture("math-worker.mjs");

const harness = serviceHarness("multifrost-connect-");
const { startService, connect } = harness;

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

const startTsService = (serviceId: string): Promise<Service> => startService(serviceId, process.execPath, [MATH]);

describe("TS parent ↔ TS service", () => {
  it("connects by name, calls, and stop() leaves the service running", async () => {
    const service = await startTsService("math-service");
    const worker = await connect("math-service");
    expect(worker.serviceId).toBe("math-service");
    expect(worker.pid).toBeUndefined(); // not ours to signal
    await worker.start();
    expect(worker.state).toBe("connected");
    expect(typeof worker.lastHeartbeatRttMs).toBe("number");
    const handle = worker.handle();
    expect(await handle.call.add(5, 3)).toBe(8);
    expect(await handle.call.pid()).toBe(service.process.pid);
    await worker.stop();
    expect(worker.state).toBe("stopped");
    expect(isAlive(service.process.pid!)).toBe(true);
    // and it still serves a new parent
    const again = await connect("math-service");
    await again.start();
    expect(await again.call.add(1, 1)).toBe(2);
  });

  it("serves 10 parents × 1000 concurrent calls, each reply to its own caller", async () => {
    await startTsService("busy-service");
    const workers = await Promise.all(Array.from({ length: 10 }, () => connect("busy-service")));
    await Promise.all(workers.map((worker) => worker.start()));
    const results = await Promise.all(
      workers.map((worker, p) => Promise.all(Array.from({ length: 1000 }, (_, i) => worker.call.add(p * 1_000_000, i)))),
    );
    results.forEach((values, p) => expect(values).toEqual(Array.from({ length: 1000 }, (_, i) => p * 1_000_000 + i)));
    for (const worker of workers) expect(worker.stats.unmatchedReplies).toBe(0);
  });

  it("refuses a second live instance of the same service id", async () => {
    const first = await startTsService("only-one");
    const second = spawn(process.execPath, [MATH], {
      env: { ...process.env, MULTIFROST_REGISTRY_DIR: harness.registryDir, MF_SERVICE_ID: "only-one" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    harness.processes.push(second);
    let stderr = "";
    second.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = await once(second, "close");
    expect(code).toBe(1);
    expect(stderr).toMatch(/ServiceAlreadyRunningError: Service 'only-one' already running \(PID: \d+, port: \d+\)/);
    expect((await harness.registry.lookup("only-one"))?.pid).toBe(first.process.pid);
  });

  it("unregisters on SIGTERM and exits 0", async () => {
    const service = await startTsService("leaving");
    service.process.kill("SIGTERM");
    const [code] = await once(service.process, "close");
    expect(code).toBe(0);
    expect(await harness.registry.lookup("leaving")).toBeUndefined();
    expect(JSON.parse(readFileSync(join(harness.registryDir, "services.json"), "utf8"))).toEqual({});
  });

  it("fails connect() with ServiceNotFoundError when nothing registers in time", async () => {
    const started = Date.now();
    const error = await ParentWorker.connect("nobody-home", 300, { registryDir: harness.registryDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceNotFoundError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("fails start() clearly when the service died after connect()", async () => {
    const service = await startTsService("gone");
    const worker = await connect("gone", 5000, { startupTimeout: 500 });
    service.process.kill("SIGKILL");
    await once(service.process, "close");
    // A dead pid's entry is not a live service: connect() does not find it, start() fails.
    expect(await ParentWorker.connect("gone", 0, { registryDir: harness.registryDir }).catch((e: unknown) => e)).toBeInstanceOf(ServiceNotFoundError);
    const error = await worker.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect((error as Error).message).toMatch(/Cannot connect to service 'gone'/);
    expect(worker.state).toBe("failed");
  });

  it("a service in namespace 'math' answers only calls for 'math'; others time out, and it keeps serving", async () => {
    const service = await startService("ns-service", process.execPath, [MATH], { MF_NAMESPACE: "math" });
    const worker = await connect("ns-service");
    await worker.start(); // heartbeats are not filtered by namespace
    const math = worker.handle().call.withOptions({ namespace: "math" });
    expect(await math.add(2, 3)).toBe(5);

    // Default namespace: the service drops the call, so it fails by its own timeout. The parent
    // cannot know the service's namespace; #timeoutError adds a namespace hint only to calls made
    // in a non-default namespace, so this message names none.
    const started = Date.now();
    const lost = await rejectionOf(worker.call.withOptions({ timeout: 300 }).add(1, 1));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(lost).toBeInstanceOf(CallTimeoutError);
    expect(lost).toMatchObject({ code: "ERR_CALL_TIMEOUT", functionName: "add", timeoutMs: 300 });
    expect(lost.message).toBe("Function 'add' timed out after 300ms");
    const sameByCallFunction = await rejectionOf(worker.callFunction("add", [1, 1], 300));
    expect(sameByCallFunction).toBeInstanceOf(CallTimeoutError);

    // Any other namespace: the timeout message names the namespace the call was made in.
    const wrong = await rejectionOf(worker.call.withOptions({ namespace: "algebra", timeout: 300 }).add(1, 1));
    expect(wrong).toBeInstanceOf(CallTimeoutError);
    expect(wrong.message).toBe("Function 'add' timed out after 300ms (namespace 'algebra': a worker in another namespace ignores the call)");

    // The service still serves: this parent, by callFunction too, and a new parent whose default is "math".
    expect(await math.add(20, 22)).toBe(42);
    expect(await worker.callFunction("pid", [], 5000, "math")).toBe(service.process.pid);
    const mathParent = await connect("ns-service", 5000, { namespace: "math" });
    await mathParent.start();
    expect(await mathParent.call.add(7, 8)).toBe(15);
    expect(isAlive(service.process.pid!)).toBe(true);
    // Three timeouts in a row mark the connection degraded (not dead): it still answers.
    expect(worker.isHealthy).toBe(true);
    expect(["connected", "degraded"]).toContain(worker.state);
  });
});

describe("across languages through the registry", () => {
  it("TS parent → Python service registered the Python v4 way", async () => {
    const service = await startService("py-service", PYTHON, [PEER, "child", "--bind", "--register", "py-service", "--registry-dir", harness.registryDir]);
    const worker = await connect("py-service");
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
    expect(await worker.call.type_of(2 ** 40)).toBe("int");
    expect(await worker.call.get_info()).toMatchObject({ language: "python", pid: service.process.pid });
    await worker.stop();
    expect(isAlive(service.process.pid!)).toBe(true);
    service.process.kill("SIGTERM");
    await once(service.process, "close");
    expect(await harness.registry.lookup("py-service")).toBeUndefined(); // Python unregistered itself
  });

  it("Python parent → TS service: every interop case but shutdown passes", async () => {
    const service = await startTsService("ts-for-python");
    const parent = spawn(PYTHON, [PEER, "connect", "--service", "ts-for-python", "--registry-dir", harness.registryDir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    harness.processes.push(parent);
    let stdout = "";
    let stderr = "";
    parent.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    parent.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = await once(parent, "close");
    const records = stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as { case?: string; ok?: boolean; done?: boolean; passed?: number; failed?: number });
    const failed = records.filter((r) => r.case && !r.ok);
    expect(failed, `${JSON.stringify(failed)}\n${stderr}`).toEqual([]);
    expect(records.at(-1)).toEqual({ done: true, passed: 18, failed: 0 });
    expect(code).toBe(0);
    expect(isAlive(service.process.pid!)).toBe(true); // the Python parent did not stop it
  }, 60_000);
});
