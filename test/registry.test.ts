import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InvalidArgumentError, RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError } from "../src/errors.js";
import { FileRegistry, REGISTRY_DIR_ENV, type ServiceEntry } from "../src/registry/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const PYTHON = "/usr/bin/python3";
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Spawned {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  readonly lines: string[];
  stderr: string;
  /** Settles when the process has exited and its output is fully read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const spawned: Spawned[] = [];

function start(command: string, args: string[]): Spawned {
  const child = spawn(command, args, { stdio: "pipe" });
  const closed = once(child, "close").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const proc: Spawned = { child, pid: child.pid!, lines: [], stderr: "", closed };
  let pending = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop()!;
    proc.lines.push(...parts);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (proc.stderr += chunk));
  spawned.push(proc);
  return proc;
}

const startNode = (script: string, args: (string | number)[]): Spawned => start(process.execPath, [fixture(`registry/${script}`), ...args.map(String)]);

async function waitForLine(proc: Spawned, line: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () => {
      if (proc.lines.includes(line)) return true;
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
        throw new Error(`pid ${proc.pid} exited before printing ${line}: ${proc.stderr}`);
      }
      return false;
    },
    timeoutMs,
    `"${line}" from pid ${proc.pid}`,
  );
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const proc = start(process.execPath, ["-e", ""]);
  await proc.closed;
  return proc.pid;
}

let tmp: string;
let dir: string;
let registry: FileRegistry;
let warnings: string[];

const registryFile = (): string => path.join(dir, "services.json");
const readRaw = (): Record<string, Record<string, unknown>> => JSON.parse(fs.readFileSync(registryFile(), "utf8"));
const writeRaw = (content: unknown): void => {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(registryFile(), typeof content === "string" ? content : JSON.stringify(content, null, 2));
};

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mf-registry-"));
  dir = path.join(tmp, "registry"); // created by the registry itself, to check its mode
  registry = new FileRegistry({ dir });
  warnings = [];
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).startsWith("multifrost registry:")) {
      warnings.push(String(chunk));
      return true;
    }
    return write(chunk, ...rest);
  });
});

afterEach(async () => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  for (const proc of spawned.splice(0)) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill("SIGKILL");
    await proc.closed;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "every spawned process to be gone");
});

describe("FileRegistry: location", () => {
  it("uses the dir option, then MULTIFROST_REGISTRY_DIR, then ~/.multifrost, without touching the disk", () => {
    vi.stubEnv(REGISTRY_DIR_ENV, path.join(tmp, "from-env"));
    expect(new FileRegistry({ dir: path.join(tmp, "from-option") }).path).toBe(path.join(tmp, "from-option", "services.json"));
    expect(new FileRegistry().path).toBe(path.join(tmp, "from-env", "services.json"));
    vi.stubEnv(REGISTRY_DIR_ENV, "");
    expect(new FileRegistry().dir).toBe(path.join(os.homedir(), ".multifrost"));
    expect(fs.existsSync(path.join(tmp, "from-env"))).toBe(false);
    expect(fs.existsSync(path.join(tmp, "from-option"))).toBe(false);
  });
});

describe("FileRegistry: register, lookup, list, unregister", () => {
  it("registers, looks up, lists and unregisters", async () => {
    expect(await registry.list()).toEqual({}); // no directory yet
    expect(await registry.lookup("alpha")).toBeUndefined();

    const alpha = await registry.register("alpha", 5001);
    expect(alpha).toEqual({ port: 5001, pid: process.pid, started: expect.stringMatching(ISO_UTC), pidStart: expect.any(Number) });
    const beta = await registry.register("beta", 5002);
    expect(await registry.lookup("alpha")).toEqual(alpha);
    expect(await registry.list()).toEqual({ alpha, beta });

    expect(await registry.unregister("alpha")).toBe(true);
    expect(await registry.lookup("alpha")).toBeUndefined();
    expect(await registry.unregister("alpha")).toBe(false);
    expect(await registry.list()).toEqual({ beta });
  });

  it("writes services.json as v4 does (2-space JSON of {port, pid, started}) plus pidStart, file 0600, directory 0700", async () => {
    const entry = await registry.register("svc", 5555);
    const raw = fs.readFileSync(registryFile(), "utf8");
    const parsed = JSON.parse(raw);
    expect(raw).toBe(JSON.stringify(parsed, null, 2));
    expect(parsed).toEqual({ svc: { port: 5555, pid: process.pid, started: entry.started, pidStart: entry.pidStart } });
    // v4 readers use port and pid only; pidStart (our owner's start time) is an extra key they ignore.
    expect(Object.keys(parsed.svc)).toEqual(["port", "pid", "started", "pidStart"]);
    expect(fs.statSync(registryFile()).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(dir)).toEqual(["services.json"]); // no temp file, no lock left behind
  });

  it("narrows a wider registry directory it owns to 0700", async () => {
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o755);
    await registry.register("svc", 5555);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("lets the same pid register again (a restart in the same process) and overwrites the entry", async () => {
    await registry.register("svc", 5001);
    const again = await registry.register("svc", 5002);
    expect(again.port).toBe(5002);
    expect(readRaw().svc!.port).toBe(5002);
  });

  it("replaces the entry of a dead owner", async () => {
    const dead = await deadPid();
    writeRaw({ svc: { port: 5001, pid: dead, started: new Date().toISOString() } });
    expect(await registry.lookup("svc")).toBeUndefined();
    expect(await registry.list()).toEqual({});
    await expect(registry.discover("svc", 0)).rejects.toBeInstanceOf(ServiceNotFoundError);

    const entry = await registry.register("svc", 5002);
    expect(entry).toMatchObject({ port: 5002, pid: process.pid });
    expect(readRaw().svc).toEqual(entry);
  });

  it("refuses an id that another live process owns", async () => {
    const other = process.ppid;
    const theirs = await registry.register("svc", 5001, other);
    const error = await rejectionOf(registry.register("svc", 5002));
    expect(error).toBeInstanceOf(ServiceAlreadyRunningError);
    expect(error).toMatchObject({ code: "ERR_SERVICE_RUNNING", serviceId: "svc", pid: other, port: 5001 });
    expect(error.message).toBe(`Service 'svc' already running (PID: ${other}, port: 5001)`);
    expect(await registry.lookup("svc")).toEqual(theirs);
  });

  it("unregister removes only the given pid's entry", async () => {
    const other = process.ppid;
    await registry.register("svc", 5001, other);
    expect(await registry.unregister("svc")).toBe(false);
    expect((await registry.lookup("svc"))?.pid).toBe(other);
    expect(await registry.unregister("svc", other)).toBe(true);
    expect(await registry.lookup("svc")).toBeUndefined();
  });

  it("treats ids such as __proto__ and constructor as plain keys", async () => {
    expect(await registry.lookup("constructor")).toBeUndefined();
    const entry = await registry.register("__proto__", 5001);
    expect(await registry.lookup("__proto__")).toEqual(entry);
    expect(Object.keys(await registry.list())).toEqual(["__proto__"]);
    expect(Object.keys(readRaw())).toEqual(["__proto__"]);
  });

  it("validates its arguments", async () => {
    for (const bad of ["", "a\nb", "tab\there", "nul\u0000", "x".repeat(257), 42]) {
      await expect(registry.register(bad as string, 5001)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(registry.lookup(bad as string)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    for (const port of [0, 65536, 1.5, Number.NaN]) {
      await expect(registry.register("svc", port)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    for (const pid of [0, -1, 2.5]) {
      await expect(registry.register("svc", 5001, pid)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(registry.unregister("svc", pid)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    for (const timeout of [-1, Number.NaN]) {
      await expect(registry.discover("svc", timeout)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await registry.register("x".repeat(256), 5001);
    await registry.register("ünïcode id with spaces", 5002);
    expect(Object.keys(await registry.list())).toHaveLength(2);
  });
});

describe("FileRegistry: discover", () => {
  it("waits for a service that another process registers later", async () => {
    const startedAt = Date.now();
    const late = startNode("register-later.mjs", [dir, "late", 5003, 200]);
    const entry = await registry.discover("late", 10_000);
    expect(entry).toMatchObject({ port: 5003, pid: late.pid });
    expect(Date.parse(entry.started)).toBeGreaterThanOrEqual(startedAt);
    await waitForLine(late, "REGISTERED");
    late.child.stdin.end();
    expect((await late.closed).code).toBe(0);
    expect(await registry.lookup("late")).toBeUndefined(); // its owner is gone
  });

  it("rejects with ServiceNotFoundError after the timeout", async () => {
    const startedAt = Date.now();
    const error = await rejectionOf(registry.discover("missing", 300));
    const elapsed = Date.now() - startedAt;
    expect(error).toBeInstanceOf(ServiceNotFoundError);
    expect(error).toMatchObject({ code: "ERR_SERVICE_NOT_FOUND", serviceId: "missing", timeoutMs: 300 });
    expect(error.message).toBe("Service 'missing' not found within 300ms");
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(2000);
  });

  it("looks once with a timeout of 0", async () => {
    const startedAt = Date.now();
    await expect(registry.discover("svc", 0)).rejects.toBeInstanceOf(ServiceNotFoundError);
    expect(Date.now() - startedAt).toBeLessThan(100);
    const entry = await registry.register("svc", 5001);
    expect(await registry.discover("svc", 0)).toEqual(entry);
  });

  it("reads a half-written file (JS v4 writes in place) as nothing yet, without touching it", async () => {
    const partial = '{\n  "svc": {\n    "port": 50';
    writeRaw(partial);
    expect(await registry.lookup("svc")).toBeUndefined();
    expect(await registry.list()).toEqual({});
    const found = registry.discover("svc", 5000);
    await sleep(250);
    expect(fs.readFileSync(registryFile(), "utf8")).toBe(partial);
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "2026-01-01T00:00:00.000Z" } });
    expect(await found).toEqual({ port: 5001, pid: process.pid, started: "2026-01-01T00:00:00.000Z" });
    expect(warnings).toEqual([]);
  });
});

describe("FileRegistry: damaged and foreign files", () => {
  for (const [what, content] of [
    ["a corrupt file", "{not json"],
    ["an empty file", ""],
    ["a JSON array", "[1, 2]"],
  ] as const) {
    it(`recovers from ${what}: warns once, keeps the bad file aside, starts empty`, async () => {
      writeRaw(content);
      const entry = await registry.register("svc", 5001);
      expect(readRaw()).toEqual({ svc: entry });
      const aside = fs.readdirSync(dir).filter((name) => name.startsWith("services.json.corrupt-"));
      expect(aside).toHaveLength(1);
      expect(fs.readFileSync(path.join(dir, aside[0]!), "utf8")).toBe(content);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^multifrost registry: .*services\.json was corrupt \(.+\), starting from an empty registry; the bad file was kept as .*services\.json\.corrupt-\S+\n$/,
      );
      await registry.register("another", 5002);
      expect(warnings).toHaveLength(1);
    });
  }

  it("ignores malformed entries and drops them on the next write", async () => {
    const live = { port: 5001, pid: process.ppid, started: "2026-01-01T00:00:00.000Z" };
    writeRaw({
      good: live,
      text: "not an entry",
      list: [1, 2],
      nullish: null,
      zeroPort: { port: 0, pid: process.ppid, started: "x" },
      bigPort: { port: 65536, pid: process.ppid, started: "x" },
      floatPort: { port: 50.5, pid: process.ppid, started: "x" },
      stringPort: { port: "5001", pid: process.ppid, started: "x" },
      negativePid: { port: 5001, pid: -1, started: "x" },
      zeroPid: { port: 5001, pid: 0, started: "x" },
      noPid: { port: 5001, started: "x" },
    });
    expect(await registry.list()).toEqual({ good: live });
    const mine = await registry.register("mine", 5002);
    expect(readRaw()).toEqual({ good: live, mine });
    expect(warnings).toEqual([]);
  });

  it("a service bound beyond loopback is written with its address as `advertise` and read back as `host`", async () => {
    const entry = await registry.register("wide", 5003, process.pid, { host: "10.0.0.7" });
    expect(entry.host).toBe("10.0.0.7");
    expect(readRaw()["wide"]).toMatchObject({ port: 5003, advertise: "10.0.0.7" });
    expect(readRaw()["wide"]).not.toHaveProperty("host");
    expect(await registry.lookup("wide")).toMatchObject({ port: 5003, host: "10.0.0.7" });
    await expect(registry.register("bad", 5004, process.pid, { host: "a b" })).rejects.toThrow(/host must be a host name or an IP address/);
  });

  it("reads a registry written by Python v4 (local time without zone, extra keys) and keeps it intact", async () => {
    const pythonEntry = { port: 46123, pid: process.ppid, started: "2026-03-13T10:11:12.123456", host: "box" };
    writeRaw({ "py-service": pythonEntry });
    const expected: ServiceEntry = { port: 46123, pid: process.ppid, started: "2026-03-13T10:11:12.123456" };
    expect(await registry.lookup("py-service")).toEqual(expected);
    expect(await registry.discover("py-service", 0)).toEqual(expected);
    expect(await registry.list()).toEqual({ "py-service": expected });
    await registry.register("ts-service", 5001);
    expect(readRaw()["py-service"]).toEqual(pythonEntry);
  });
});

describe("FileRegistry: locking with v4 writers", () => {
  it("waits while Python v4 holds services.lock, and never writes under it", async () => {
    await registry.register("ts-before", 5001);
    const python = start(PYTHON, [fixture("registry/python_v4_writer.py"), dir, "py-v4", "500"]);
    await waitForLine(python, "LOCKED");
    const startedAt = Date.now();
    const entry = await registry.register("ts-after", 5002);
    const waited = Date.now() - startedAt;
    expect((await python.closed).code).toBe(0);
    expect(python.lines).toContain("UNCHANGED"); // the file did not change while Python held the lock
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(Date.parse(entry.started)).toBeGreaterThanOrEqual(startedAt + 300);
    expect(Object.keys(readRaw()).sort()).toEqual(["py-v4", "ts-after", "ts-before"]); // no lost update
    expect(fs.existsSync(path.join(dir, "services.lock"))).toBe(false);
  });

  it("waits while JS v4 holds proper-lockfile's lock on services.json, and never writes under it", async () => {
    await registry.register("ts-before", 5001);
    const js = startNode("js-v4-writer.mjs", [dir, "js-v4", 500]);
    await waitForLine(js, "LOCKED");
    const startedAt = Date.now();
    const entry = await registry.register("ts-after", 5002);
    const waited = Date.now() - startedAt;
    expect(await js.closed).toEqual({ code: 0, signal: null });
    expect(js.stderr).toBe("");
    expect(js.lines).toContain("UNCHANGED");
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(Date.parse(entry.started)).toBeGreaterThanOrEqual(startedAt + 300);
    expect(Object.keys(readRaw()).sort()).toEqual(["js-v4", "ts-after", "ts-before"]);
    expect(fs.existsSync(path.join(dir, "services.json.lock"))).toBe(false);
  });

  it("interleaves with several Python v4 writers at once without losing an entry", async () => {
    fs.mkdirSync(dir, { mode: 0o700 });
    const writers = Array.from({ length: 4 }, (_, i) => start(PYTHON, [fixture("registry/python_v4_writer.py"), dir, `py-${i}`, "30"]));
    await Promise.all(Array.from({ length: 6 }, (_, i) => registry.register(`ts-${i}`, 5000 + i)));
    for (const writer of writers) expect((await writer.closed).code).toBe(0);
    expect(Object.keys(readRaw()).sort()).toEqual(["py-0", "py-1", "py-2", "py-3", "ts-0", "ts-1", "ts-2", "ts-3", "ts-4", "ts-5"]);
  });

  it("removes a stale services.lock whose owner is dead", async () => {
    const dead = await deadPid();
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, "services.lock"), String(dead));
    const startedAt = Date.now();
    await registry.register("svc", 5001);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    expect(fs.existsSync(path.join(dir, "services.lock"))).toBe(false);
    expect(warnings).toEqual([expect.stringContaining(`removed the stale lock ${fs.realpathSync(dir)}/services.lock (its owner, pid ${dead}, is gone)`)]);
  });

  it("gives up with RegistryError when a live process keeps services.lock, and releases its own lock", async () => {
    fs.mkdirSync(dir, { mode: 0o700 });
    const lock = path.join(dir, "services.lock");
    fs.writeFileSync(lock, String(process.ppid));
    const impatient = new FileRegistry({ dir, lockTimeoutMs: 300 });
    const error = await rejectionOf(impatient.register("svc", 5001));
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.code).toBe("ERR_REGISTRY");
    expect(error.message).toContain(`services.lock was still held after 300ms by pid ${process.ppid}`);
    expect(fs.readFileSync(lock, "utf8")).toBe(String(process.ppid));
    expect(fs.existsSync(path.join(dir, "services.json.lock"))).toBe(false);
    expect(fs.existsSync(registryFile())).toBe(false);
  });

  it("treats an empty services.lock as being written (held) unless it is old", async () => {
    fs.mkdirSync(dir, { mode: 0o700 });
    const lock = path.join(dir, "services.lock");
    fs.writeFileSync(lock, "");
    const impatient = new FileRegistry({ dir, lockTimeoutMs: 300 });
    expect(await rejectionOf(impatient.register("svc", 5001))).toBeInstanceOf(RegistryError);
    expect(fs.existsSync(lock)).toBe(true);

    const minuteAgo = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, minuteAgo, minuteAgo);
    await impatient.register("svc", 5001);
    expect(fs.existsSync(lock)).toBe(false);
    expect(warnings).toEqual([expect.stringContaining("(no pid inside, 60 s old)")]);
  });
});

describe("FileRegistry: many processes at once", () => {
  it("20 processes register, discover and unregister concurrently: no lost entry, no lock error", { timeout: 90_000 }, async () => {
    const count = 20;
    fs.mkdirSync(dir, { mode: 0o700 });
    const startedAt = Date.now();
    const procs = Array.from({ length: count }, (_, i) =>
      startNode("contender.mjs", [dir, i, count, i % 2 === 0 ? "unregister" : "keep"]),
    );
    // Every process stays alive until all have discovered their neighbour (a discovered entry must be live).
    await Promise.all(procs.map((proc) => waitForLine(proc, "READY", 60_000)));
    const allReadyMs = Date.now() - startedAt;
    for (const proc of procs) proc.child.stdin.end();
    const exits = await Promise.all(procs.map((proc) => proc.closed));
    for (const [i, proc] of procs.entries()) {
      expect({ i, exit: exits[i], stderr: proc.stderr }).toEqual({ i, exit: { code: 0, signal: null }, stderr: "" });
      expect(proc.lines).toEqual(["READY", "DONE"]);
    }
    const final = readRaw();
    const kept = procs.map((proc, i) => ({ proc, i })).filter(({ i }) => i % 2 === 1);
    expect(Object.keys(final).sort()).toEqual(kept.map(({ i }) => `svc-${i}`).sort());
    for (const { proc, i } of kept) expect(final[`svc-${i}`]).toMatchObject({ port: 20000 + i, pid: proc.pid });
    expect(fs.readdirSync(dir)).toEqual(["services.json"]);
    console.log(`20 contenders: all registered and discovered in ${allReadyMs} ms, done in ${Date.now() - startedAt} ms`);
  });
});
