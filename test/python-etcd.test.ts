import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { openRegistry, ParentWorker, pool, supervise, type ServiceEntry, type ServicePool } from "../src/index.js";
import { etcdHarness } from "./helpers/etcd-services.js";
import { fixture } from "./helpers/fixtures.js";
import { waitFor } from "./helpers/processes.js";

/**
 * Python-library services (python/src/multifrost, run by Debian's /usr/bin/python3 with PYTHONPATH
 * at python/src, as in python-library.test.ts) registered in a throwaway etcd (test/helpers/etcd.mjs)
 * are found like TS services: by ParentWorker.connect, by a pool that follows the service (beside
 * a TS instance), and they leave etcd at once on SIGTERM, after their lease's TTL on kill -9.
 */
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_ENV = { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":") };
const PY_SERVICE = fileURLToPath(new URL("./fixtures/python-lib/etcd_service.py", import.meta.url));

const harness = etcdHarness();
const { processes, stops } = harness;

/** A registry URL with a key prefix of its own; `ttl` seconds of lease. */
function nextUrl(ttl = 2): string {
  return harness.nextUrl(ttl);
}

/** The live instances of `serviceId` in the etcd at `url`. */
function instances(url: string, serviceId: string): Promise<ServiceEntry[]> {
  return openRegistry(url).instances!(serviceId);
}

/** Resolves once `child` has an entry under `serviceId`; throws if it exits or takes 10 s. */
function registered(child: ChildProcess, url: string, serviceId: string): Promise<ServiceEntry> {
  return harness.registered(child, serviceId, url);
}

/** A Python service process registered in etcd: `$MULTIFROST_REGISTRY`, or the `registry` argument. */
async function startPython(url: string, serviceId: string, how: "env" | "argument" = "env"): Promise<{ child: ChildProcess; entry: ServiceEntry }> {
  const env = how === "env" ? { MULTIFROST_REGISTRY: url } : { MF_REGISTRY: url, MULTIFROST_REGISTRY: "" };
  const child = spawn(PYTHON, [PY_SERVICE], {
    env: { ...process.env, ...PY_ENV, MF_SERVICE_ID: serviceId, ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  processes.push(child);
  return { child, entry: await registered(child, url, serviceId) };
}

/** A TS service process (test/fixtures/supervised-worker.mjs) registered through `$MULTIFROST_REGISTRY`. */
async function startTs(url: string, serviceId: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fixture("supervised-worker.mjs")], {
    env: { ...process.env, MULTIFROST_REGISTRY: url, MF_SERVICE_ID: serviceId },
    stdio: ["ignore", "ignore", "inherit"],
  });
  processes.push(child);
  await registered(child, url, serviceId);
  return child;
}

/** Resolves with the time `child`'s entry under `serviceId` was first seen gone (watched, not polled). */
function goneAt(url: string, serviceId: string, pid: number): Promise<number> {
  return new Promise((resolve) => {
    const unwatch = openRegistry(url).watch!(serviceId, (entries) => {
      if (entries.some((entry) => entry.pid === pid)) return;
      unwatch();
      resolve(Date.now());
    });
  });
}

describe("a Python service on etcd", () => {
  it("registers the TS entry shape, and a TS ParentWorker.connect finds it and calls it", async () => {
    const url = nextUrl();
    const { child, entry } = await startPython(url, "py-model");
    expect(entry).toMatchObject({ host: "127.0.0.1", pid: child.pid, instance: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(entry.started).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(typeof entry.hostname).toBe("string");
    // What `multifrost services` lists.
    expect((await openRegistry(url).listInstances!()).map(({ serviceId, entry: e }) => [serviceId, e.pid])).toEqual([["py-model", child.pid]]);

    const worker = await ParentWorker.connect("py-model", 5000, { registry: url });
    stops.push(() => worker.stop());
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
    expect(await worker.call.pid()).toBe(child.pid);
  });

  it("registers through the registry argument as through $MULTIFROST_REGISTRY", async () => {
    const url = nextUrl();
    const { child } = await startPython(url, "py-arg", "argument");
    const worker = await ParentWorker.connect("py-arg", 5000, { registry: url });
    stops.push(() => worker.stop());
    await worker.start();
    expect(await worker.call.pid()).toBe(child.pid);
  });

  it("two Python instances and a TS one are all members of a pool that follows the service; a killed one leaves it", async () => {
    const url = nextUrl();
    const a = await startPython(url, "mixed");
    const b = await startPython(url, "mixed");
    const ts = await startTs(url, "mixed");
    const tree = supervise({ id: "root", children: [pool({ id: "mixed", service: "mixed", select: "least-busy", idempotent: true })] }, { registry: url });
    stops.push(() => tree.stop());
    await tree.start();
    const members = tree.pool("mixed") as ServicePool;
    await waitFor(() => members.instances.length === 3 && members.workers.every((w) => w.state === "connected"), 8000, "three connected members");
    // least-busy: concurrent calls spread over every instance, whatever its language.
    const pids = new Set(await Promise.all(Array.from({ length: 30 }, () => tree.get("mixed").call.slowPid(150))));
    expect(pids).toEqual(new Set([a.child.pid, b.child.pid, ts.pid]));

    b.child.kill("SIGKILL");
    await waitFor(() => members.instances.length === 2, 8000, "the killed Python instance's member to go");
    const survivors = new Set(await Promise.all(Array.from({ length: 20 }, () => tree.get("mixed").call.slowPid(150))));
    expect(survivors).toEqual(new Set([a.child.pid, ts.pid]));
    expect(tree.root.state).toBe("running");
  }, 40_000);

  it("SIGTERM revokes its lease: gone at once, long before the TTL", async () => {
    const url = nextUrl(30);
    const { child } = await startPython(url, "py-term");
    const gone = goneAt(url, "py-term", child.pid!);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the watch is reading
    const signalled = Date.now();
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    expect(code).toBe(0);
    expect((await gone) - signalled).toBeLessThan(3000);
    expect(await instances(url, "py-term")).toEqual([]);
  });

  it("kill -9 leaves the entry to its lease: gone within the TTL", async () => {
    const url = nextUrl(2);
    const { child } = await startPython(url, "py-kill");
    const gone = goneAt(url, "py-kill", child.pid!);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const killedAt = Date.now();
    child.kill("SIGKILL");
    await once(child, "exit");
    expect((await instances(url, "py-kill")).map((entry) => entry.pid)).toEqual([child.pid]); // nobody revoked it
    const after = (await gone) - killedAt;
    expect(after).toBeLessThan(2000 + 2000); // TTL, plus etcd's expiry check
  });
});
