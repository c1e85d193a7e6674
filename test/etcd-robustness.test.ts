import { once } from "node:events";
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, pool, RegistryError, supervise, type ServicePool, type TreeEvent } from "../src/index.js";
import { etcdHarness } from "./helpers/etcd-services.js";
import { waitFor } from "./helpers/processes.js";

/**
 * What a demanding user does to an etcd registry: rolling redeploys under a pool, restarting a
 * tree after its services moved, an etcd that hangs, compaction, keys other writers put there.
 */

const harness = etcdHarness();

/** The etcd key prefix of the current test's URL. */
function prefixOf(url: string): string {
  return url.slice(`etcd://${harness.etcd.endpoint}/`.length, url.indexOf("?"));
}

async function withClient<T>(run: (client: Etcd3) => Promise<T>): Promise<T> {
  const client = new Etcd3({ hosts: `http://${harness.etcd.endpoint}` });
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

describe("a pool that follows a service, across redeploys", () => {
  it("a rolling redeploy (start the new instance, SIGTERM the old, one by one) never fails the pool and loses no idempotent call", async () => {
    harness.nextUrl();
    const old = [await harness.startService("math"), await harness.startService("math"), await harness.startService("math")];
    const tree = supervise({ id: "root", children: [pool({ id: "math", service: "math", idempotent: true })] }, { registry: harness.url });
    harness.stops.push(() => tree.stop());
    const poolEvents: TreeEvent[] = [];
    tree.subscribe((event) => {
      if (event.path === "root/math" || event.path === "root") poolEvents.push(event);
    });
    await tree.start();
    const members = tree.pool("math") as ServicePool;
    const failures: string[] = [];
    let done = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) await tree.get("math").call.slowPid(5).then(() => done++, (error: Error) => failures.push(`${error.name}: ${error.message}`));
    })();
    const fresh: number[] = [];
    for (const instance of old) {
      fresh.push((await harness.startService("math")).pid!);
      const exited = once(instance, "exit");
      instance.kill("SIGTERM");
      await exited;
    }
    await waitFor(() => members.instances.length === 3 && members.workers.every((worker) => worker.state === "connected"), 8000, "the new instances' members");
    const after = done;
    await waitFor(() => done > after + 20, 5000, "calls after the redeploy");
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(poolEvents.filter((event) => event.to === "failing" || event.to === "failed")).toEqual([]);
    expect(tree.root.state).toBe("running");
    const pids = new Set(await Promise.all(Array.from({ length: 30 }, () => tree.get("math").call.slowPid(50))));
    expect([...pids].every((pid) => fresh.includes(pid as number))).toBe(true);
  });

  it("a stopped tree starts again after its service moved meanwhile (members are made afresh)", async () => {
    harness.nextUrl();
    const first = await harness.startService("math");
    const tree = supervise({ id: "root", children: [pool({ id: "math", service: "math" })] }, { registry: harness.url });
    harness.stops.push(() => tree.stop());
    await tree.start();
    expect(await tree.get("math").call.pid()).toBe(first.pid);
    await tree.stop();
    const second = await harness.startService("math");
    const exited = once(first, "exit");
    first.kill("SIGTERM");
    await exited;
    await tree.start();
    expect((tree.pool("math") as ServicePool).instances).toHaveLength(1);
    expect(await tree.get("math").call.pid()).toBe(second.pid);
  });
});

describe("discovery bounds", () => {
  it("discover(id, Infinity) waits until the service registers", async () => {
    const registry = harness.registry();
    const found = registry.discover("late", Infinity);
    setTimeout(() => void registry.register("late", 4500), 300);
    expect(await found).toMatchObject({ port: 4500 });
    await registry.unregister("late");
  });

  it("an etcd that hangs (SIGSTOP) fails reads and discovery with RegistryError within the request timeout", async () => {
    const registry = harness.registry();
    await registry.register("frozen", 4600);
    const url = `${harness.url.slice(0, harness.url.indexOf("?"))}?timeout=1000`;
    const { openRegistry } = await import("../src/index.js");
    const bounded = openRegistry(url);
    expect(await bounded.lookup("frozen")).toMatchObject({ port: 4600 });
    harness.etcd.process().kill("SIGSTOP");
    try {
      let started = Date.now();
      await expect(bounded.lookup("frozen")).rejects.toBeInstanceOf(RegistryError);
      expect(Date.now() - started).toBeLessThan(2500);
      started = Date.now();
      await expect(bounded.discover("absent", 1000)).rejects.toBeInstanceOf(RegistryError);
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      harness.etcd.process().kill("SIGCONT");
    }
    // Frozen past the 2 s lease, etcd expires it on waking; the registration is re-created.
    expect(await bounded.discover("frozen", 8000)).toMatchObject({ port: 4600 });
    await registry.unregister("frozen");
  });
});

describe("watches", () => {
  it("a watch etcd cancels (its revision compacted away while it was disconnected) is made again: a new instance is still found", async () => {
    const registry = harness.registry();
    const seen: number[][] = [];
    const unwatch = registry.watch!("svc", (entries) => seen.push(entries.map((entry) => entry.port)));
    await waitFor(() => seen.length > 0, 5000, "the first push");
    await harness.etcd.stop();
    // Meanwhile history moves on and is compacted away: the watch resumes from a revision that is gone.
    await harness.etcd.start();
    await withClient(async (client) => {
      for (let i = 0; i < 5; i++) await client.put(`${prefixOf(harness.url)}other/${i}`).value("x");
      const { header } = await client.kv.range({ key: Buffer.from("x") });
      await client.kv.compact({ revision: header!.revision!, physical: true });
    });
    try {
      await registry.register("svc", 4700);
      await waitFor(() => seen.some((ports) => ports.includes(4700)), 12_000, "the watch to see the new instance");
    } finally {
      unwatch();
      await registry.unregister("svc");
    }
  }, 30_000);
});

describe("keys other writers put under the prefix", () => {
  it("are skipped, never thrown on: malformed ids and values; a lone surrogate id is refused; the CLI shows control characters, never obeys them", async () => {
    const registry = harness.registry();
    const prefix = prefixOf(harness.url);
    await withClient(async (client) => {
      await client.put(`${prefix}services/%ZZ/aaaaaaaaaaaaaaaa`).value("{}");
      await client.put(`${prefix}services/svc/bbbbbbbbbbbbbbbb`).value("not json");
      await client.put(`${prefix}services/svc/cccccccccccccccc`).value(JSON.stringify({ host: "10.0.0.9", port: 4800, pid: 1, started: "", hostname: "h\u001b[31mRED\u001b[0m\nfake-line" }));
    });
    expect((await registry.listInstances!()).map(({ serviceId, entry }) => [serviceId, entry.port])).toEqual([["svc", 4800]]);
    expect(Object.keys(await registry.list())).toEqual(["svc"]);
    await expect(registry.register("bad\ud800id", 4900)).rejects.toBeInstanceOf(InvalidArgumentError);
    const table = await harness.cli(["services", "--registry", harness.url]);
    expect(table.code).toBe(0);
    expect(table.stdout).not.toContain("\u001b");
    expect(table.stdout).toContain("h\\u001b[31mRED\\u001b[0m\\u000afake-line");
    expect(table.stdout.trim().split("\n")).toHaveLength(2);
    // A flood: a value too big to be an entry is skipped, and a read stops at 1000 instances.
    await withClient(async (client) => {
      await client.put(`${prefix}services/flood/dddddddddddddddd`).value(JSON.stringify({ host: "10.0.0.9", port: 4801, pid: 1, started: "", pad: "x".repeat(10_000) }));
      for (let batch = 0; batch < 11; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            client.put(`${prefix}services/flood/${String(batch * 100 + i).padStart(16, "0")}`).value(JSON.stringify({ host: "10.0.0.9", port: 5000 + batch * 100 + i, pid: 1, started: "" })),
          ),
        );
      }
    });
    const flood = await registry.instances!("flood");
    expect(flood.length).toBeLessThanOrEqual(1000);
    expect(flood.every((entry) => entry.port !== 4801)).toBe(true);
  });
});
