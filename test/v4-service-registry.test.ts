/**
 * v4's static ServiceRegistry, kept for compatibility, over a default FileRegistry. Each test
 * points MULTIFROST_REGISTRY_DIR at its own temporary directory and restores it afterwards.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  FileRegistry,
  InvalidArgumentError,
  REGISTRY_DIR_ENV,
  ServiceAlreadyRunningError,
  ServiceNotFoundError,
  ServiceRegistry,
} from "../src/index.js";
import { rejectionOf } from "./helpers/fixtures.js";

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let dir: string;
let registry: FileRegistry;

const readRaw = (): Record<string, Record<string, unknown>> => JSON.parse(fs.readFileSync(path.join(dir, "services.json"), "utf8"));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mf-v4-registry-"));
  vi.stubEnv(REGISTRY_DIR_ENV, dir);
  registry = new FileRegistry({ dir });
});

afterEach(() => {
  vi.unstubAllEnvs();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "close");
  return child.pid!;
}

/** Resolves once `port` could be bound (on all interfaces, as v4 services bind) and released. */
async function bindable(port: number): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, resolve);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe("ServiceRegistry (v4 static API)", () => {
  it("register → discover → unregister round trip, in a file FileRegistry reads", async () => {
    const port = await ServiceRegistry.register("svc");
    expect(Number.isInteger(port) && port >= 1 && port <= 65535).toBe(true);
    expect(await ServiceRegistry.discover("svc")).toBe(port);
    expect(await ServiceRegistry.discover("svc", 0)).toBe(port);

    // The file is the v4 document, in the directory the environment named at call time.
    expect(readRaw()).toEqual({ svc: { port, pid: process.pid, started: expect.stringMatching(ISO_UTC), pidStart: expect.any(Number) } });
    expect(await registry.lookup("svc")).toEqual({ port, pid: process.pid, started: readRaw().svc!.started, pidStart: readRaw().svc!.pidStart });
    expect(await registry.list()).toEqual({ svc: expect.objectContaining({ port }) });

    await ServiceRegistry.unregister("svc");
    expect(await registry.lookup("svc")).toBeUndefined();
    expect(readRaw()).toEqual({});
    await ServiceRegistry.unregister("svc"); // nothing left: resolves quietly
    await expect(ServiceRegistry.discover("svc", 0)).rejects.toBeInstanceOf(ServiceNotFoundError);
  });

  it("reads MULTIFROST_REGISTRY_DIR at each call, not once", async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "mf-v4-registry-other-"));
    try {
      vi.stubEnv(REGISTRY_DIR_ENV, other);
      const port = await ServiceRegistry.register("moved");
      expect(await new FileRegistry({ dir: other }).lookup("moved")).toMatchObject({ port, pid: process.pid });
      expect(fs.existsSync(path.join(dir, "services.json"))).toBe(false);
      vi.stubEnv(REGISTRY_DIR_ENV, dir);
      await expect(ServiceRegistry.discover("moved", 0)).rejects.toBeInstanceOf(ServiceNotFoundError);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it("discover waits for a registration that arrives later", async () => {
    const found = ServiceRegistry.discover("late", 5000);
    await sleep(250);
    await registry.register("late", 6123);
    expect(await found).toBe(6123);
  });

  it("discover rejects with ServiceNotFoundError within its bound", async () => {
    const started = Date.now();
    const error = await rejectionOf(ServiceRegistry.discover("nobody-home", 300));
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(ServiceNotFoundError);
    expect(error).toMatchObject({ code: "ERR_SERVICE_NOT_FOUND", serviceId: "nobody-home", timeoutMs: 300 });
    expect(error.message).toBe("Service 'nobody-home' not found within 300ms"); // v4's text
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1500);
  });

  it("discover ignores an entry whose process is dead", async () => {
    await registry.register("ghost", 6001, await deadPid());
    await expect(ServiceRegistry.discover("ghost", 150)).rejects.toBeInstanceOf(ServiceNotFoundError);
  });

  it("a second register of a live id fails clearly and leaves the first entry", async () => {
    const port = await ServiceRegistry.register("dup");
    const error = await rejectionOf(ServiceRegistry.register("dup"));
    expect(error).toBeInstanceOf(ServiceAlreadyRunningError);
    expect(error).toMatchObject({ code: "ERR_SERVICE_RUNNING", serviceId: "dup", pid: process.pid, port });
    expect(error.message).toBe(`Service 'dup' already running (PID: ${process.pid}, port: ${port})`);
    expect(await ServiceRegistry.discover("dup", 0)).toBe(port);
  });

  it("refuses an id another live process holds, and unregister leaves that entry alone", async () => {
    const other = process.ppid; // alive for the whole run
    const theirs = await registry.register("theirs", 6002, other);
    const error = await rejectionOf(ServiceRegistry.register("theirs"));
    expect(error).toBeInstanceOf(ServiceAlreadyRunningError);
    expect(error).toMatchObject({ pid: other, port: 6002 });
    await ServiceRegistry.unregister("theirs");
    expect(await registry.lookup("theirs")).toEqual(theirs);
  });

  it("replaces an entry whose process is dead", async () => {
    await registry.register("phoenix", 6003, await deadPid());
    const port = await ServiceRegistry.register("phoenix");
    expect(await registry.lookup("phoenix")).toMatchObject({ port, pid: process.pid });
  });

  it("concurrent registers of one id in one process give exactly one port (v4 threw lock errors)", async () => {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => ServiceRegistry.register("race")));
    const won = results.filter((r): r is PromiseFulfilledResult<number> => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    for (const r of lost) expect(r.reason).toBeInstanceOf(ServiceAlreadyRunningError);
    expect(await ServiceRegistry.discover("race", 0)).toBe(won[0]!.value);
  });

  it("concurrent registers of different ids all succeed", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `svc-${i}`);
    const ports = await Promise.all(ids.map((id) => ServiceRegistry.register(id)));
    expect(Object.keys(readRaw()).sort()).toEqual([...ids].sort());
    for (const [i, id] of ids.entries()) expect(await ServiceRegistry.discover(id, 0)).toBe(ports[i]);
  });

  it("rejects invalid ids with InvalidArgumentError (v4 accepted an empty id)", async () => {
    await expect(ServiceRegistry.register("")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(ServiceRegistry.discover("bad\nid", 0)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(ServiceRegistry.discover("svc", -1)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(ServiceRegistry.unregister("")).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(fs.existsSync(path.join(dir, "services.json"))).toBe(false);
  });

  it("findFreePort returns a port that can be bound", async () => {
    const port = await ServiceRegistry.findFreePort();
    expect(Number.isInteger(port) && port >= 1 && port <= 65535).toBe(true);
    await bindable(port);
    // register() hands out such a port too
    await bindable(await ServiceRegistry.register("bind-me"));
  });
});
