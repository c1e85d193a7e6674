/**
 * Issue 10, item 4: the registry refuses what another user could have written, tells a reused pid
 * from its owner, and neither reads a huge file nor re-parses an unchanged one. Real processes:
 * the foreign registry is written by a process running as `nobody`, liveness is checked against
 * spawned processes.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError } from "../src/errors.js";
import { ParentWorker } from "../src/index.js";
import { FileRegistry } from "../src/registry/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const IS_ROOT = process.getuid?.() === 0;
const NOBODY_UID = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim());
const NOBODY_GID = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }).trim());
const MY_UID = process.getuid!();

const children: ChildProcessWithoutNullStreams[] = [];
let tmp: string;
let dir: string;
let registry: FileRegistry;

function start(command: string, args: string[]): ChildProcessWithoutNullStreams {
  const child = spawn(command, args, { stdio: "pipe" });
  children.push(child);
  return child;
}

async function firstLine(child: ChildProcessWithoutNullStreams): Promise<string> {
  let out = "";
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  child.stdout.setEncoding("utf8");
  for await (const chunk of child.stdout) {
    out += chunk as string;
    if (out.includes("\n")) return out.slice(0, out.indexOf("\n"));
  }
  throw new Error(`pid ${child.pid} exited without a line: ${err}`);
}

/** Field 22 of /proc/<pid>/stat, read here independently of the library. */
function startTimeOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

const registryFile = (): string => path.join(dir, "services.json");
const writeRaw = (content: unknown, mode = 0o600): void => {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(registryFile(), JSON.stringify(content, null, 2), { mode });
  fs.chmodSync(registryFile(), mode);
};
/** Puts the file's mtime at a fixed past moment, out of the window in which a parse is not cached. */
const SETTLED = new Date("2026-01-01T00:00:00.000Z");
const settle = (): void => fs.utimesSync(registryFile(), SETTLED, SETTLED);

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mf-registry-hard-"));
  dir = path.join(tmp, "registry");
  registry = new FileRegistry({ dir });
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "close");
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "every spawned process to be gone");
});

/** Every way in: each must reject with RegistryError whose message matches. */
async function expectRefused(target: FileRegistry, message: RegExp): Promise<void> {
  for (const attempt of [
    () => target.lookup("svc"),
    () => target.list(),
    () => target.discover("svc", 1000),
    () => target.register("svc", 5001),
    () => target.unregister("svc"),
  ]) {
    const error = await rejectionOf(attempt());
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.code).toBe("ERR_REGISTRY");
    expect(error.message).toMatch(message);
  }
}

describe("FileRegistry refuses what another user could write", () => {
  it.skipIf(!IS_ROOT)("refuses a registry that a process running as nobody created, and connect() never reaches its port", async () => {
    fs.chmodSync(tmp, 0o711);
    const home = path.join(tmp, "nobody-home");
    fs.mkdirSync(home);
    fs.chownSync(home, NOBODY_UID, NOBODY_GID);
    const foreign = path.join(home, "registry");
    const attacker = start("setpriv", [
      `--reuid=${NOBODY_UID}`,
      `--regid=${NOBODY_GID}`,
      "--clear-groups",
      process.execPath,
      fixture("registry/register-later.mjs"),
      foreign,
      "svc",
      "5001",
      "0",
    ]);
    expect(await firstLine(attacker)).toBe("REGISTERED");
    expect(fs.statSync(foreign).uid).toBe(NOBODY_UID);

    const refused = new RegExp(`refusing the registry directory ${foreign} \\(owner uid ${NOBODY_UID}, mode 0700\\): it is not owned by this process's uid ${MY_UID}`);
    await expectRefused(new FileRegistry({ dir: foreign }), refused);
    const startedAt = Date.now();
    const error = await rejectionOf(ParentWorker.connect("svc", 5000, { registryDir: foreign, onOutput: () => undefined }));
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.message).toMatch(refused);
    expect(Date.now() - startedAt).toBeLessThan(1000); // refused at once, not after polling for 5 s
  });

  it.skipIf(!IS_ROOT)("refuses our own directory holding a services.json owned by nobody", async () => {
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } });
    fs.chownSync(registryFile(), NOBODY_UID, NOBODY_GID);
    await expectRefused(
      registry,
      new RegExp(`refusing the registry file ${registryFile()} \\(owner uid ${NOBODY_UID}, mode 0600\\): it is not owned by this process's uid ${MY_UID}`),
    );
  });

  it.skipIf(!IS_ROOT)("refuses a directory chowned to nobody even with mode 0700", async () => {
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chownSync(dir, NOBODY_UID, NOBODY_GID);
    await expectRefused(registry, new RegExp(`registry directory ${dir} \\(owner uid ${NOBODY_UID}, mode 0700\\)`));
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700); // not touched
  });

  for (const mode of [0o777, 0o1777, 0o770, 0o720]) {
    it(`refuses our own directory with mode ${mode.toString(8).padStart(4, "0")} (group or others may write it) and leaves it as it is`, async () => {
      writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } });
      fs.chmodSync(dir, mode);
      await expectRefused(
        registry,
        new RegExp(`refusing the registry directory ${dir} \\(owner uid ${MY_UID}, mode ${mode.toString(8).padStart(4, "0")}\\): group or others may write it`),
      );
      expect(fs.statSync(dir).mode & 0o7777).toBe(mode);
    });
  }

  it("accepts our own directory readable by others (0755): reads leave it, an update narrows it to 0700", async () => {
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } });
    fs.chmodSync(dir, 0o755);
    expect(await registry.lookup("svc")).toMatchObject({ port: 5001 });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
    await registry.register("other", 5002);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  for (const mode of [0o620, 0o660, 0o602, 0o666]) {
    it(`refuses a services.json with mode ${mode.toString(8).padStart(4, "0")} (group or others may write it)`, async () => {
      writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } }, mode);
      await expectRefused(
        registry,
        new RegExp(`refusing the registry file ${registryFile()} \\(owner uid ${MY_UID}, mode ${mode.toString(8).padStart(4, "0")}\\): group or others may write it`),
      );
      expect(fs.statSync(registryFile()).mode & 0o777).toBe(mode);
    });
  }

  it("accepts a services.json readable by others (0644, as v4 writers create it under umask 022)", async () => {
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } }, 0o644);
    expect(await registry.lookup("svc")).toMatchObject({ port: 5001 });
    await registry.register("other", 5002);
    expect(fs.statSync(registryFile()).mode & 0o777).toBe(0o600); // rewritten by us: 0600
  });
});

describe("FileRegistry tells a reused pid from the entry's owner", () => {
  it("records the owner's start time (field 22 of /proc/<pid>/stat) as pidStart, for this process and for another pid", async () => {
    expect((await registry.register("mine", 5001)).pidStart).toBe(startTimeOf(process.pid));
    const sleeper = start("sleep", ["30"]);
    expect((await registry.register("theirs", 5002, sleeper.pid!)).pidStart).toBe(startTimeOf(sleeper.pid!));
    const raw = JSON.parse(fs.readFileSync(registryFile(), "utf8"));
    expect(raw.mine.pidStart).toBe(startTimeOf(process.pid));
    expect(raw.theirs.pidStart).toBe(startTimeOf(sleeper.pid!));
  });

  it("a live owner with the right start time is alive: found, and its id cannot be taken", async () => {
    const owner = start(process.execPath, [fixture("registry/register-later.mjs"), dir, "svc", "5001", "0"]);
    expect(await firstLine(owner)).toBe("REGISTERED");
    const entry = await registry.discover("svc", 0);
    expect(entry).toMatchObject({ port: 5001, pid: owner.pid, pidStart: startTimeOf(owner.pid!) });
    expect(await rejectionOf(registry.register("svc", 5002))).toBeInstanceOf(ServiceAlreadyRunningError);
  });

  it("an entry whose pid now belongs to an unrelated process (another start time) counts as dead and is replaced", async () => {
    for (const unrelated of [process.pid, start("sleep", ["30"]).pid!]) {
      const otherRegistry = new FileRegistry({ dir });
      writeRaw({ svc: { port: 5001, pid: unrelated, started: "2026-01-01T00:00:00.000Z", pidStart: startTimeOf(unrelated) - 1 } });
      expect(await otherRegistry.lookup("svc")).toBeUndefined();
      expect(await otherRegistry.list()).toEqual({});
      expect(await rejectionOf(otherRegistry.discover("svc", 300))).toBeInstanceOf(ServiceNotFoundError);
      // Another process may take the id: the entry's owner is gone.
      const replaced = await otherRegistry.register("svc", 5002, process.ppid);
      expect(replaced).toMatchObject({ port: 5002, pid: process.ppid, pidStart: startTimeOf(process.ppid) });
      fs.rmSync(registryFile());
    }
  });

  it("an entry without pidStart (written by a v4 peer) is judged by its pid alone", async () => {
    const sleeper = start("sleep", ["30"]);
    writeRaw({ v4: { port: 5001, pid: sleeper.pid, started: "2026-03-13T10:11:12.123456" } });
    expect(await registry.lookup("v4")).toEqual({ port: 5001, pid: sleeper.pid, started: "2026-03-13T10:11:12.123456" });
    sleeper.kill("SIGKILL");
    await once(sleeper, "close");
    expect(await registry.lookup("v4")).toBeUndefined();
  });

  it("a zombie owner (exited, not yet reaped) counts as dead", async () => {
    // sh starts `sleep 0` in the background and becomes `sleep 30`, which never reaps it.
    const parent = start("sh", ["-c", "sleep 0 & echo $!; exec sleep 30"]);
    const zombie = Number(await firstLine(parent));
    await waitFor(() => fs.readFileSync(`/proc/${zombie}/stat`, "utf8").includes(") Z "), 5000, "the zombie");
    writeRaw({
      v4: { port: 5001, pid: zombie, started: "" },
      ours: { port: 5002, pid: zombie, started: "", pidStart: startTimeOf(zombie) },
    });
    expect(await registry.list()).toEqual({});
  });

  it("v4 writers (JS and Python) keep our pidStart when they rewrite the file, and read our entry", async () => {
    const mine = await registry.register("mine", 5001);
    // One after the other: JS v4 and Python v4 do not exclude each other.
    for (const [command, args] of [
      [process.execPath, [fixture("registry/js-v4-writer.mjs"), dir, "js-v4", "0"]],
      ["/usr/bin/python3", [fixture("registry/python_v4_writer.py"), dir, "py-v4", "0"]],
    ] as const) {
      const writer = start(command, [...args]);
      writer.stdout.resume();
      let stderr = "";
      writer.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      const [code] = (await once(writer, "close")) as [number | null];
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    }
    const raw = JSON.parse(fs.readFileSync(registryFile(), "utf8"));
    expect(raw.mine).toEqual(mine);
    expect(Object.keys(raw).sort()).toEqual(["js-v4", "mine", "py-v4"]);
    expect(await registry.lookup("mine")).toEqual(mine);
    expect(await registry.lookup("js-v4")).toBeUndefined(); // both writers have exited
  });
});

describe("FileRegistry bounds what it reads", () => {
  it("refuses a 50 MB services.json from its size, fast and without reading it", async () => {
    fs.mkdirSync(dir, { mode: 0o700 });
    const fd = fs.openSync(registryFile(), "w", 0o600);
    const chunk = Buffer.alloc(1024 * 1024, " ");
    fs.writeSync(fd, '{"svc": {"port": 5001, "pid": 1, "started": "');
    for (let i = 0; i < 50; i++) fs.writeSync(fd, chunk);
    fs.writeSync(fd, '"}}');
    fs.closeSync(fd);
    const size = fs.statSync(registryFile()).size;
    expect(size).toBeGreaterThan(50 * 1024 * 1024);

    const rssBefore = process.memoryUsage().rss;
    const startedAt = performance.now();
    const error = await rejectionOf(registry.lookup("svc"));
    const firstMs = performance.now() - startedAt;
    for (let i = 0; i < 100; i++) await rejectionOf(registry.lookup("svc"));
    const hundredMs = performance.now() - startedAt - firstMs;
    const rssGrowth = process.memoryUsage().rss - rssBefore;

    expect(error).toBeInstanceOf(RegistryError);
    expect(error.message).toBe(
      `refusing the registry file ${registryFile()}: ${size} bytes is more than maxFileBytes (4194304); it was not read. ` +
        "Remove it (or raise maxFileBytes) if it is really yours",
    );
    expect(registry.counters.parses).toBe(0);
    expect(await rejectionOf(registry.register("other", 5002))).toBeInstanceOf(RegistryError);
    expect(fs.statSync(registryFile()).size).toBe(size); // left alone
    expect(firstMs).toBeLessThan(1000);
    expect(rssGrowth).toBeLessThan(20 * 1024 * 1024);
    console.log(
      `50 MB services.json: first refusal ${firstMs.toFixed(2)} ms, 100 more ${hundredMs.toFixed(1)} ms, ` +
        `RSS growth ${(rssGrowth / 1024 / 1024).toFixed(2)} MB`,
    );
  });

  it("honours maxFileBytes: a file at the cap is read, one byte more is refused, and writes stay under it", async () => {
    const small = new FileRegistry({ dir, maxFileBytes: 200 });
    const entry = { port: 5001, pid: process.pid, started: "" };
    writeRaw({ svc: entry });
    const padding = 200 - fs.statSync(registryFile()).size;
    fs.writeFileSync(registryFile(), JSON.stringify({ svc: entry }, null, 2) + " ".repeat(padding), { mode: 0o600 });
    expect(await small.lookup("svc")).toEqual(entry);
    fs.appendFileSync(registryFile(), " ");
    expect((await rejectionOf(small.lookup("svc"))).message).toContain("201 bytes is more than maxFileBytes (200)");

    fs.rmSync(registryFile());
    await small.register("a", 5001);
    const error = await rejectionOf(small.register("b".repeat(150), 5002));
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.message).toContain("the registry would exceed maxFileBytes (200)");
    expect(Object.keys(JSON.parse(fs.readFileSync(registryFile(), "utf8")))).toEqual(["a"]);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new FileRegistry({ dir, maxFileBytes: bad })).toThrow(/maxFileBytes/);
  });

  it("does not re-read an unchanged file: 1000 lookups cost one parse", async () => {
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } });
    settle();
    const startedAt = performance.now();
    for (let i = 0; i < 1000; i++) expect(await registry.lookup("svc")).toBeDefined();
    const cachedMs = performance.now() - startedAt;
    expect(registry.counters).toEqual({ stats: 1000, parses: 1, cacheHits: 999 });

    // The same 1000 lookups with a fresh registry each time (no cache), for comparison.
    const uncachedStartedAt = performance.now();
    for (let i = 0; i < 1000; i++) await new FileRegistry({ dir }).lookup("svc");
    const uncachedMs = performance.now() - uncachedStartedAt;
    console.log(
      `unchanged services.json: ${Math.round(1000 / (cachedMs / 1000))} lookups/s cached (stats only), ` +
        `${Math.round(1000 / (uncachedMs / 1000))} lookups/s read and parsed each time`,
    );
  });

  it("a registry near the cap (20 000 entries, 2.6 MB): an unchanged file is looked up without parsing it again", async () => {
    const document: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) {
      document[`service-number-${i}`] = { port: 1000 + (i % 60_000), pid: process.pid, started: new Date().toISOString(), pidStart: 1 };
    }
    document.svc = { port: 5001, pid: process.pid, started: "" };
    writeRaw(document);
    settle();
    const size = fs.statSync(registryFile()).size;
    const lookups = async (count: number, fresh: boolean): Promise<number> => {
      const startedAt = performance.now();
      for (let i = 0; i < count; i++) await (fresh ? new FileRegistry({ dir }) : registry).lookup("svc");
      return count / ((performance.now() - startedAt) / 1000);
    };
    const cached = await lookups(1000, false);
    const parsedEachTime = await lookups(20, true);
    expect(registry.counters.parses).toBe(1);
    expect(cached).toBeGreaterThan(10 * parsedEachTime);
    console.log(
      `services.json of ${(size / 1e6).toFixed(1)} MB: ${Math.round(cached)} lookups/s cached, ` +
        `${Math.round(parsedEachTime)} lookups/s read and parsed each time`,
    );
  });

  it("discover() polling an unchanged file stats it, and parses it once", async () => {
    writeRaw({ other: { port: 5001, pid: process.pid, started: "" } });
    settle();
    await rejectionOf(registry.discover("svc", 1000));
    const { stats, parses } = registry.counters;
    expect(stats).toBeGreaterThanOrEqual(9);
    expect(parses).toBe(1);
  });

  it("notices every change: a replaced file, an in-place rewrite that keeps size and mtime, a fresh file each time", async () => {
    writeRaw({ svc: { port: 5001, pid: process.pid, started: "" } });
    settle();
    expect((await registry.lookup("svc"))?.port).toBe(5001);

    writeRaw({ svc: { port: 5002, pid: process.pid, started: "" } }); // same size, in place
    settle(); // and the same mtime as before: ctime still tells
    expect((await registry.lookup("svc"))?.port).toBe(5002);

    const temp = path.join(dir, "next.json");
    fs.writeFileSync(temp, JSON.stringify({ svc: { port: 5003, pid: process.pid, started: "" } }, null, 2), { mode: 0o600 });
    fs.renameSync(temp, registryFile());
    expect((await registry.lookup("svc"))?.port).toBe(5003); // new inode

    // Written just now: parsed on every look, since a rewrite within the same timestamp tick would not show.
    const before = registry.counters.parses;
    for (let i = 0; i < 5; i++) await registry.lookup("svc");
    expect(registry.counters.parses - before).toBe(5);
  });
});
