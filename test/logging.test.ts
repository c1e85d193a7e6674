import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import {
  LOG_LEVEL_ENV,
  LogEvent,
  LogLevel,
  ParentWorker,
  StructuredLogger,
  supervise,
  supervisor,
  worker,
  type LogEntry,
  type LogFields,
  type Logger,
  type SupervisionTree,
} from "../src/index.js";
import { RateLimit } from "../src/observability/logger.js";
import { checkTree, InvalidArgumentError, SpecError } from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const CRASHY = fixture("crash-loop-worker.mjs");
const LOGGING = fixture("logging-worker.mjs");
const quiet = { onOutput: () => {} };
const fastBackoff = { minMs: 20, maxMs: 200, jitter: 0 };

interface Line extends LogFields {
  level: string;
  msg: string | undefined;
}

/** A pino-compatible logger that keeps what it is given. */
function fakeLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (obj: LogFields, msg?: string) => lines.push({ ...obj, level, msg });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

const trees: SupervisionTree[] = [];
const workers: ParentWorker[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all([...trees.splice(0).map((tree) => tree.stop()), ...workers.splice(0).map((w) => w.stop())]);
});
afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by logging tests");
});

describe("logging: lifecycle events to a pino-compatible logger", () => {
  it("a tree logs spawn, ready, exit and restart with the worker's path, pid and reason after kill -9", async () => {
    const logger = fakeLogger();
    const tree = supervise({ id: "root", children: [worker({ id: "math", spawn: MATH, backoff: fastBackoff, ...quiet })] }, { logger });
    trees.push(tree);
    await tree.start();
    const math = tree.worker("math");
    const pid = math.pid!;
    expect(logger.lines).toContainEqual(expect.objectContaining({ event: "process_spawn", worker: "root/math", pid, level: "info" }));
    expect(logger.lines).toContainEqual(expect.objectContaining({ event: "worker_ready", worker: "root/math", pid }));

    process.kill(pid, "SIGKILL");
    await waitFor(() => logger.lines.some((l) => l.event === "worker_ready" && l.pid !== pid), 5000, "ready again");
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ event: "process_exit", worker: "root/math", pid, signal: "SIGKILL", reason: "killed by SIGKILL", level: "warn" }),
    );
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ event: LogEvent.WORKER_RESTART, worker: "root/math", pid, reason: "killed by SIGKILL", from: "connected", to: "restarting", level: "warn" }),
    );
    const newPid = math.pid!;
    expect(logger.lines).toContainEqual(expect.objectContaining({ event: "worker_ready", worker: "root/math", pid: newPid, restarts: 1 }));
    // Calls are never logged.
    const before = logger.lines.length;
    for (let i = 0; i < 20; i++) await tree.get<{ add(a: number, b: number): number }>("math").call.add(i, 1);
    expect(logger.lines.length).toBe(before);
    await tree.stop();
    expect(logger.lines).toContainEqual(expect.objectContaining({ event: "worker_stop", worker: "root/math" }));
  });

  it("a supervisor that gives up logs supervisor_escalate with its path and reason", async () => {
    const logger = fakeLogger();
    const crashy = worker({ id: "crashy", spawn: CRASHY, env: { MF_EXIT_AFTER_MS: "150" }, backoff: fastBackoff, ...quiet });
    const tree = supervise({ id: "root", intensity: 5, children: [supervisor({ id: "loop", intensity: 1, period: 10_000, children: [crashy] })] }, { logger });
    trees.push(tree);
    await tree.start();
    await waitFor(() => logger.lines.some((l) => l.event === "supervisor_escalate" && l.supervisor === "root/loop"), 8000, "escalation");
    const line = logger.lines.find((l) => l.event === "supervisor_escalate")!;
    expect(line).toMatchObject({ level: "error", supervisor: "root/loop", to: "failed" });
    expect(line.reason).toMatch(/more than 1 restarts within 10000 ms \(last: crashy, exit 1\)/);
  });

  it("filters by logLevel, and by MULTIFROST_LOG_LEVEL when no logLevel is given", async () => {
    const warnOnly = fakeLogger();
    const a = ParentWorker.spawn(MATH, "node", { ...quiet, logger: warnOnly, logLevel: "warn" });
    workers.push(a);
    await a.start();
    const pid = a.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor(() => a.state === "failed", 5000, "failed");
    expect(warnOnly.lines.map((l) => l.level).every((level) => level === "warn" || level === "error")).toBe(true);
    expect(warnOnly.lines).toContainEqual(expect.objectContaining({ event: "process_exit", pid, level: "warn" }));
    expect(warnOnly.lines).toContainEqual(expect.objectContaining({ event: "worker_failed", worker: "math-worker.mjs", level: "error" }));

    vi.stubEnv(LOG_LEVEL_ENV, "error");
    const errorOnly = fakeLogger();
    const b = ParentWorker.spawn(MATH, "node", { ...quiet, logger: errorOnly });
    workers.push(b);
    await b.start();
    await b.stop();
    vi.unstubAllEnvs();
    expect(errorOnly.lines).toEqual([]);
  });

  it("is quiet by default: no logger, nothing printed", async () => {
    const out = vi.spyOn(process.stdout, "write");
    const err = vi.spyOn(process.stderr, "write");
    const log = vi.spyOn(console, "log");
    const w = ParentWorker.spawn(MATH, "node", quiet);
    workers.push(w);
    await w.start();
    process.kill(w.pid!, "SIGKILL");
    await waitFor(() => w.state === "failed", 5000, "failed");
    await w.stop();
    expect([...out.mock.calls, ...err.mock.calls, ...log.mock.calls]).toEqual([]);
  });

  it("a child logs started (mode, endpoint) and stopped (reason)", async () => {
    const lines: Line[] = [];
    const w = ParentWorker.spawn(LOGGING, "node", {
      onOutput: (_stream, line) => {
        if (line.startsWith("LOG ")) lines.push(JSON.parse(line.slice(4)) as Line);
      },
    });
    workers.push(w);
    await w.start();
    const pid = w.pid!;
    await waitFor(() => lines.some((l) => l.event === "worker_start"), 3000, "started line");
    expect(lines.find((l) => l.event === "worker_start")).toMatchObject({ level: "info", pid, mode: "spawn", worker: "LoggingWorker" });
    expect(String(lines.find((l) => l.event === "worker_start")!["endpoint"])).toMatch(/^(ipc|tcp):\/\//);
    await w.stop();
    expect(lines).toContainEqual(expect.objectContaining({ event: "worker_stop", pid, reason: "shutdown-message" }));
  });

  it("a child logs busy refusals once per second, not once per call", async () => {
    const lines: Line[] = [];
    const w = ParentWorker.spawn(LOGGING, "node", {
      env: { MF_BUSY: "1" },
      onOutput: (_stream, line) => {
        if (line.startsWith("LOG ")) lines.push(JSON.parse(line.slice(4)) as Line);
      },
    });
    workers.push(w);
    await w.start();
    const calls = Array.from({ length: 6 }, () => w.call.sleep!(200).then(() => "ok", (error: Error) => error.message));
    const results = await Promise.all(calls);
    expect(results.filter((r) => String(r).startsWith("BusyError"))).toHaveLength(5);
    await waitFor(() => lines.some((l) => l.event === "busy_refused"), 3000, "busy line");
    expect(lines.filter((l) => l.event === "busy_refused")).toHaveLength(1);
    expect(lines.find((l) => l.event === "busy_refused")).toMatchObject({ level: "warn", running: 1, waiting: 0, suppressed: 0 });
  });

  it("v4's StructuredLogger works as a logger: entries reach its handler as LogEntry", async () => {
    const entries: LogEntry[] = [];
    const v4 = new StructuredLogger({ handler: (entry) => entries.push(entry), level: LogLevel.INFO });
    v4.info(LogEvent.WORKER_START, "Worker started in spawn mode");
    const w = ParentWorker.spawn(MATH, "node", { ...quiet, logger: v4 });
    workers.push(w);
    await w.start();
    expect(entries[0]).toMatchObject({ event: "worker_start", level: "info", message: "Worker started in spawn mode" });
    expect(entries).toContainEqual(expect.objectContaining({ event: "worker_ready", level: "info", workerId: "math-worker.mjs", metadata: expect.objectContaining({ pid: w.pid }) }));
    expect(entries.some((e) => e.level === "debug")).toBe(false);
  });

  it("refuses a logger without the four methods and a bad level; a tree file cannot give a logger", async () => {
    expect(() => ParentWorker.spawn(MATH, "node", { logger: { info: () => {} } as unknown as Logger })).toThrow(InvalidArgumentError);
    expect(() => ParentWorker.spawn(MATH, "node", { logger: fakeLogger(), logLevel: "loud" as "info" })).toThrow(/logLevel must be/);
    const error = await rejectionOf(Promise.resolve().then(() => checkTree({ id: "root", children: [{ id: "w", spawn: MATH, logger: "pino", logLevel: "loud" }] })));
    expect(error).toBeInstanceOf(SpecError);
    expect(String(error.message)).toMatch(/logger must be a pino-compatible logger/);
    expect(String(error.message)).toMatch(/logLevel must be/);
  });

  it("rate-limits repeated refusals: one line per interval, then how many were held back", () => {
    const limit = new RateLimit(1000);
    expect(limit.take(0)).toBe(0);
    expect(limit.take(10)).toBeUndefined();
    expect(limit.take(999)).toBeUndefined();
    expect(limit.take(1000)).toBe(2);
  });
});
