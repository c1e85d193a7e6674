
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import {
  InvalidArgumentError,
  openRegistry,
  parseRegistryUrl,
  ParentWorker,
  pool,
  RegistryError,
  ServiceNotFoundError,
  ServiceRegistry,
  supervise,
  type RegistryBackend,
  type ServicePool,
} from "../src/index.js";
import { etcdHarness } from "./helpers/etcd-services.js";
import { waitFor } from "./helpers/processes.js";

/**
 * The etcd registry against a real etcd (Debian's etcd-server on loopback ports, a temporary data
 * dir): leases, watches, several instances of one id, outages; services and parents as real
 * processes. Each test has its own key prefix.
 */

const harness = etcdHarness();
const { processes, stops, startService, cli } = harness;
const registry = (): RegistryBackend => harness.registry();
const nextUrl = (): string => harness.nextUrl();

describe("registry URLs", () => {
  it("parses file:// and etcd:// URLs, and refuses anything else with a typed error", () => {
    expect(parseRegistryUrl("file:///tmp/reg")).toEqual({ kind: "file", dir: "/tmp/reg" });
    expect(parseRegistryUrl("etcd://10.0.0.5:2379,10.0.0.6:2379")).toEqual({ kind: "etcd", options: { endpoints: ["10.0.0.5:2379", "10.0.0.6:2379"] } });
    expect(parseRegistryUrl("etcd://h:2379/apps/x?ttl=5&timeout=1000")).toEqual({
      kind: "etcd",
      options: { endpoints: ["h:2379"], prefix: "apps/x/", leaseTtlSeconds: 5, requestTimeoutMs: 1000 },
    });
    expect(() => parseRegistryUrl("redis://h:1")).toThrow(InvalidArgumentError);
    expect(() => parseRegistryUrl("etcd:///prefix")).toThrow(/names no etcd endpoint/);
    expect(() => parseRegistryUrl("etcd://h:1?tll=3")).toThrow(/unknown parameter 'tll'/);
  });

  it("a bad etcd option, prefix or endpoint is refused when the URL is read", () => {
    expect(() => openRegistry("etcd://h:1?ttl=1")).toThrow(/leaseTtlSeconds must be an integer from 2 to 86400/);
    expect(() => parseRegistryUrl("etcd://h:1?timeout=abc")).toThrow(/requestTimeoutMs must be a positive number/);
    expect(() => parseRegistryUrl("etcd://h:1/%E0/")).toThrow(/not valid percent-encoding/);
    expect(() => parseRegistryUrl("etcd://h/")).toThrow(/an etcd endpoint must be host:port/);
  });
});

describe("the etcd backend", () => {
  it("keeps several instances of one id, each under its own lease; unregister removes only this process's at once", async () => {
    const reg = registry();
    const a = await reg.register("math", 4001, process.pid, { host: "10.0.0.7" });
    const b = await reg.register("math", 4002);
    await reg.register("math/extra", 4003); // a "/" in an id stays apart from "math"
    expect(a).toMatchObject({ host: "10.0.0.7", port: 4001, pid: process.pid, instance: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const instances = await reg.instances!("math");
    expect(instances.map((entry) => entry.port).sort()).toEqual([4001, 4002]);
    expect(instances.find((entry) => entry.port === 4002)).toMatchObject({ host: "127.0.0.1", instance: b.instance });
    expect([4001, 4002]).toContain((await reg.lookup("math"))!.port);
    expect(Object.keys(await reg.list()).sort()).toEqual(["math", "math/extra"]);
    expect(await reg.unregister("math", 999_999)).toBe(false);
    expect(await reg.unregister("math")).toBe(true);
    expect(await reg.instances!("math")).toEqual([]);
    expect(await reg.lookup("math/extra")).toMatchObject({ port: 4003 });
    expect(await reg.unregister("math/extra")).toBe(true);
  });

  it("opens from options too ({ etcd: … }, for TLS and auth a URL cannot carry)", async () => {
    const reg = openRegistry({ etcd: { endpoints: [harness.etcd.endpoint], prefix: `opts-${process.pid}/`, leaseTtlSeconds: 3 } });
    try {
      await reg.register("optioned", 4200);
      expect(await reg.lookup("optioned")).toMatchObject({ port: 4200 });
      expect(await reg.unregister("optioned")).toBe(true);
    } finally {
      await reg.close?.();
    }
  });

  it("skips another machine's loopback instances for connecting, and still lists them", async () => {
    const reg = registry();
    const prefix = harness.url.slice(`etcd://${harness.etcd.endpoint}/`.length, harness.url.indexOf("?"));
    const client = new Etcd3({ hosts: `http://${harness.etcd.endpoint}` });
    try {
      const elsewhere = { host: "127.0.0.1", port: 4300, pid: 77, started: new Date().toISOString(), hostname: "some-other-machine" };
      await client.put(`${prefix}services/mixed/aaaaaaaaaaaaaaaa`).value(JSON.stringify(elsewhere));
      const mine = await reg.register("mixed", 4301);
      expect((await reg.instances!("mixed")).map((entry) => entry.port)).toEqual([4301]);
      expect(await reg.discover("mixed", 0)).toMatchObject({ port: 4301 });
      expect((await reg.listInstances!()).map(({ entry }) => entry.port).sort()).toEqual([4300, 4301]);
      expect(mine.host).toBe("127.0.0.1");
      await reg.unregister("mixed");
    } finally {
      await client.delete().prefix(prefix);
      client.close();
    }
  });

  it("discover waits on a watch: an instance registered later is found at once; none → ServiceNotFoundError", async () => {
    const reg = registry();
    const started = Date.now();
    const found = reg.discover("late", 5000);
    setTimeout(() => void reg.register("late", 4100), 300);
    expect(await found).toMatchObject({ port: 4100 });
    expect(Date.now() - started).toBeLessThan(2000);
    await reg.unregister("late");
    await expect(reg.discover("never", 300)).rejects.toBeInstanceOf(ServiceNotFoundError);
  });

  it("a SIGKILLed service's entry goes when its lease expires (TTL 2 s)", async () => {
    const reg = registry();
    const service = await startService("doomed");
    const gone = new Promise<number>((resolve) => {
      const unwatch = reg.watch!("doomed", (entries) => {
        if (entries.length === 0) {
          unwatch();
          resolve(Date.now());
        }
      });
    });
    const killedAt = Date.now();
    service.kill("SIGKILL");
    expect((await gone) - killedAt).toBeLessThan(5000);
  });

  it("an unreachable etcd gives RegistryError within the request timeout, never a hang", async () => {
    const reg = openRegistry("etcd://127.0.0.1:1/x/?timeout=500");
    const started = Date.now();
    await expect(reg.lookup("math")).rejects.toBeInstanceOf(RegistryError);
    await expect(reg.discover("math", 800)).rejects.toBeInstanceOf(RegistryError);
    await expect(reg.register("math", 4000)).rejects.toBeInstanceOf(RegistryError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("v4's ServiceRegistry on etcd", () => {
  it("register / discover / unregister work unchanged with $MULTIFROST_REGISTRY naming an etcd", async () => {
    const reg = registry();
    const before = process.env["MULTIFROST_REGISTRY"];
    process.env["MULTIFROST_REGISTRY"] = harness.url;
    try {
      const port = await ServiceRegistry.register("v4-style");
      expect(await ServiceRegistry.discover("v4-style", 1000)).toBe(port);
      expect(await reg.instances!("v4-style")).toEqual([expect.objectContaining({ port, pid: process.pid })]);
      await ServiceRegistry.unregister("v4-style");
      expect(await reg.instances!("v4-style")).toEqual([]);
      await expect(ServiceRegistry.discover("v4-style", 200)).rejects.toBeInstanceOf(ServiceNotFoundError);
    } finally {
      if (before === undefined) delete process.env["MULTIFROST_REGISTRY"];
      else process.env["MULTIFROST_REGISTRY"] = before;
    }
  });
});

describe("connect mode on etcd", () => {
  it("ChildWorker(serviceId) registers in $MULTIFROST_REGISTRY; ParentWorker.connect finds it and calls it", async () => {
    nextUrl();
    const service = await startService("svc");
    const worker = await ParentWorker.connect("svc", 5000, { registry: harness.url });
    stops.push(() => worker.stop());
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
    expect(await worker.call.pid()).toBe(service.pid);
  });

  it("a parent treats a service whose lease expired as down without waiting for heartbeats, and reconnects to the next instance", async () => {
    nextUrl();
    const first = await startService("svc");
    const worker = await ParentWorker.connect("svc", 5000, { registry: harness.url, heartbeatInterval: 60_000 });
    stops.push(() => worker.stop());
    await worker.start();
    expect(await worker.call.pid()).toBe(first.pid);
    const second = await startService("svc");
    const downs: string[] = [];
    worker.on("state", (change) => downs.push(`${change.from}→${change.to}: ${change.reason}`));
    first.kill("SIGKILL");
    await waitFor(() => downs.some((line) => line.includes("no longer registered")), 8000, "the lease to expire");
    await waitFor(() => worker.state === "connected", 8000, "the reconnection");
    expect(await worker.call.pid()).toBe(second.pid);
  });
});

describe("a pool that follows the registry", () => {
  it("has one member per live instance, adds those that register, drops those whose lease expires; idempotent calls never fail", async () => {
    nextUrl();
    const a = await startService("math");
    const b = await startService("math");
    const tree = supervise({ id: "root", children: [pool({ id: "math", service: "math", select: "least-busy", idempotent: true })] }, { registry: harness.url });
    stops.push(() => tree.stop());
    await tree.start();
    const members = tree.pool("math") as ServicePool;
    expect(members.instances).toHaveLength(2);
    // least-busy: concurrent calls spread over both instances.
    const pids = new Set(await Promise.all(Array.from({ length: 20 }, () => tree.get("math").call.slowPid(100))));
    expect(pids).toEqual(new Set([a.pid, b.pid]));

    const c = await startService("math");
    await waitFor(() => members.instances.length === 3 && members.workers.every((w) => w.state === "connected"), 5000, "the third member");

    // Calls keep flowing while one instance is killed; none fails.
    let failed = 0;
    let done = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await tree
          .get("math")
          .call.slowPid(20)
          .then(() => done++, () => failed++);
      }
    })();
    b.kill("SIGKILL");
    await waitFor(() => members.instances.length === 2, 8000, "the killed instance's member to go");
    const after = done;
    await waitFor(() => done > after + 10, 5000, "calls after the rebalance");
    stop = true;
    await load;
    expect(failed).toBe(0);
    const survivors = new Set(await Promise.all(Array.from({ length: 20 }, () => tree.get("math").call.slowPid(100))));
    expect(survivors).toEqual(new Set([a.pid, c.pid]));
    expect(tree.root.state).toBe("running");
  });

  it("starts even when a listed instance cannot be reached (a crashed host's, within its lease); its member goes with the entry", async () => {
    const reg = registry();
    const live = await startService("math");
    await reg.register("math", 1, 999_999); // nobody listens on port 1
    const tree = supervise(
      { id: "root", children: [pool({ id: "math", service: "math", idempotent: true, startupTimeoutMs: 1000 })] },
      { registry: harness.url },
    );
    stops.push(() => tree.stop());
    await tree.start();
    const members = tree.pool("math") as ServicePool;
    expect(members.instances).toHaveLength(2);
    for (let i = 0; i < 10; i++) expect(await tree.get("math").call.pid()).toBe(live.pid);
    await reg.unregister("math", 999_999);
    await waitFor(() => members.instances.length === 1, 5000, "the unreachable instance's member to go");
    expect(tree.root.state).toBe("running");
  });
});

describe("the CLI on etcd", () => {
  it("services lists every instance (HOST, MACHINE, INSTANCE; --json too) and call reaches one, from --registry or $MULTIFROST_REGISTRY", async () => {
    nextUrl();
    const a = await startService("svc");
    const b = await startService("svc");
    const table = await cli(["services", "--registry", harness.url]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+HOST\s+PORT\s+PID\s+MACHINE\s+AGE\s+CURVE\s+INSTANCE$/m);
    for (const pid of [a.pid, b.pid]) expect(table.stdout).toMatch(new RegExp(`^svc\\s+127\\.0\\.0\\.1\\s+\\d+\\s+${pid}\\s+\\S+\\s+\\S+\\s+[0-9a-f]{16}$`, "m"));
    const json = JSON.parse((await cli(["services", "--json"], { MULTIFROST_REGISTRY: harness.url })).stdout) as { registry: string; services: { id: string; pid: number; instance: string; host: string }[] };
    expect(json.registry).toMatch(/^etcd:\/\//);
    expect(json.services.map((row) => row.pid).sort()).toEqual([a.pid, b.pid].sort());
    expect(json.services.every((row) => row.id === "svc" && row.host === "127.0.0.1" && /^[0-9a-f]{16}$/.test(row.instance))).toBe(true);
    const called = await cli(["call", "svc", "add", "2", "3"], { MULTIFROST_REGISTRY: harness.url });
    expect(called).toEqual({ code: 0, stdout: "5\n", stderr: "" });
    expect((await cli(["services", "--registry", "redis://x"])).code).toBe(2);
  });
});

describe("an etcd outage", () => {
  it("running connections keep working while etcd is down; the registration is there again after it returns", async () => {
    const reg = registry();
    const service = await startService("steady");
    const worker = await ParentWorker.connect("steady", 5000, { registry: harness.url });
    stops.push(() => worker.stop());
    await worker.start();
    await harness.etcd.stop();
    const until = Date.now() + 5000;
    let calls = 0;
    while (Date.now() < until) {
      expect(await worker.call.add(calls, 1)).toBe(calls + 1);
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(worker.state).toBe("connected");
    await harness.etcd.start();
    const deadline = Date.now() + 10_000;
    let back = false;
    while (!back && Date.now() < deadline) {
      back = (await reg.instances!("steady").catch(() => [])).some((entry) => entry.pid === service.pid);
      if (!back) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(back).toBe(true);
    expect(await worker.call.add(1, 1)).toBe(2);
    const fresh = await ParentWorker.connect("steady", 5000, { registry: harness.url });
    stops.push(() => fresh.stop());
    await fresh.start();
    expect(await fresh.call.pid()).toBe(service.pid);
  }, 40_000);
});
