import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { curveKeyPair } from "../src/index.js";
import { startTestEtcd, type TestEtcd } from "./helpers/etcd.mjs";
import { fixture } from "./helpers/fixtures.js";
import { createHostPair, killAndWait, namespaceEnv, namespaceSkipReason, type HostPair } from "./helpers/netns.mjs";

/**
 * Beyond one machine (issue 14), on one machine: two network namespaces joined by a veth pair stand
 * for two hosts. Host A runs etcd and the parent (test/fixtures/multihost-parent.mjs, driven over
 * stdio); host B runs the service instances (test/fixtures/curve-service.mjs), bound to B's veth
 * address, advertising it, CURVE on with the parent's key authorized. Nothing is reachable from
 * this test's own namespace: it only starts, kills and asks. Needs root (CAP_SYS_ADMIN); skipped,
 * saying why, only where namespaces cannot be created.
 */

const skipReason = namespaceSkipReason();
if (skipReason !== undefined) console.warn(`test/multihost.test.ts is skipped: ${skipReason}`);
/** The lease TTL of every registration here, in seconds: a killed instance is gone within it. */
const TTL_S = 3;
const SERVICE = "math";
const now = (): number => performance.timeOrigin + performance.now();

const server = curveKeyPair();
const client = curveKeyPair();

let pair: HostPair | undefined;
let etcd: TestEtcd | undefined;
let etcdDataDir: string | undefined;
let serial = 0;
const started: ChildProcess[] = [];

/** Last resort when the test process exits without its hooks (a crash): nothing may stay behind. */
function cleanUpAtExit(): void {
  killAndWait(started.map((child) => child.pid).filter((pid): pid is number => pid !== undefined));
  try {
    pair?.remove();
  } catch {
    // reported by afterAll when it runs; at exit there is nobody to tell
  }
  if (etcdDataDir !== undefined) rmSync(etcdDataDir, { recursive: true, force: true });
}

type RegistryEvent = { event: "registry"; at: number; seq: number; pids: number[]; entries: { host?: string; pid: number; publicKey?: string }[] };
type MembersEvent = { event: "members"; at: number; instances: string[]; states: string[] };
type AgentEvent = RegistryEvent | MembersEvent | { event: "ready"; at: number };
type LoadStats = { done: number; failed: number; errors: string[]; byPid: Record<string, number> };

/** The parent process in namespace A: requests over its stdin, replies and events from its stdout. */
class Parent {
  readonly events: AgentEvent[] = [];
  readonly #child: ChildProcess;
  readonly #replies = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  readonly #waiters = new Set<() => void>();
  #stderr = "";
  #nextId = 0;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const message = JSON.parse(line) as { id?: number; ok?: boolean; value?: unknown; error?: string } & Partial<AgentEvent>;
      if (message.event !== undefined) {
        this.events.push(message as AgentEvent);
        for (const wake of [...this.#waiters]) wake();
      } else if (message.id !== undefined) {
        const reply = this.#replies.get(message.id);
        this.#replies.delete(message.id);
        if (message.ok) reply?.resolve(message.value);
        else reply?.reject(new Error(message.error));
      }
    });
    child.once("exit", (code, signal) => {
      for (const reply of this.#replies.values()) reply.reject(new Error(`the parent exited (${code ?? signal}): ${this.#stderr}`));
      this.#replies.clear();
      for (const wake of [...this.#waiters]) wake();
    });
  }

  request<T = unknown>(op: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    const id = ++this.#nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#replies.delete(id);
        reject(new Error(`the parent did not answer ${op} within ${timeoutMs} ms; its stderr: ${this.#stderr}`));
      }, timeoutMs);
      this.#replies.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  /** The first event from index `from` on (one already seen, or the next) that `matches`. */
  event<E extends AgentEvent>(matches: (event: AgentEvent) => event is E, what: string, timeoutMs = 15_000, from = 0): Promise<E> {
    return new Promise<E>((resolve, reject) => {
      const look = (): void => {
        const found = this.events.slice(from).find(matches);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
          done();
          reject(new Error(`the parent exited while waiting for ${what}: ${this.#stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last events: ${JSON.stringify(this.events.slice(-3))}; stderr: ${this.#stderr}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(look);
      };
      this.#waiters.add(look);
      look();
    });
  }

  registry(what: string, holds: (pids: number[]) => boolean, from = 0, timeoutMs = 15_000): Promise<RegistryEvent> {
    return this.event((e): e is RegistryEvent => e.event === "registry" && holds(e.pids), what, timeoutMs, from);
  }

  members(what: string, holds: (e: MembersEvent) => boolean, from = 0, timeoutMs = 15_000): Promise<MembersEvent> {
    return this.event((e): e is MembersEvent => e.event === "members" && holds(e), what, timeoutMs, from);
  }
}

describe.skipIf(skipReason !== undefined)(`two hosts: network namespaces joined by a veth pair${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  let url = "";

  beforeAll(async () => {
    process.once("exit", cleanUpAtExit);
    pair = createHostPair();
    etcd = await startTestEtcd({ host: pair.a.address, wrap: pair.exec(pair.a, []) });
    const dataArg = etcd.process().spawnargs.find((arg) => arg.startsWith("--data-dir="));
    etcdDataDir = dataArg === undefined ? undefined : dirname(dataArg.slice("--data-dir=".length));
  }, 30_000);

  afterEach(async () => {
    for (const child of started.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill("SIGKILL");
      await once(child, "close");
    }
    if (etcd !== undefined && etcd.process().exitCode === null && etcd.process().signalCode === null) {
      expect(pair!.pids(), "only etcd runs in the namespaces between tests").toEqual([etcd.process().pid]);
    }
  });

  afterAll(async () => {
    try {
      await etcd?.remove();
    } finally {
      pair?.remove(); // throws if a process or a namespace stays
      pair = undefined;
      if (etcdDataDir !== undefined) rmSync(etcdDataDir, { recursive: true, force: true });
      process.removeListener("exit", cleanUpAtExit);
    }
  });

  /** Every test has its own key prefix in the one etcd. */
  function nextUrl(): string {
    url = `etcd://${etcd!.endpoint}/mh-${process.pid}-${++serial}/?ttl=${TTL_S}`;
    return url;
  }

  /** The parent process in A, watching the service's registrations. */
  async function startParent(): Promise<Parent> {
    const argv = pair!.exec(pair!.a, [process.execPath, fixture("multihost-parent.mjs")]);
    const child = spawn(argv[0]!, argv.slice(1), {
      env: namespaceEnv({ MULTIFROST_REGISTRY: url, MF_SERVICE: SERVICE, MF_CURVE_PUBLIC: client.publicKey, MF_CURVE_SECRET: client.secretKey }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    started.push(child);
    const parent = new Parent(child);
    await parent.event((e): e is AgentEvent => e.event === "ready", "the parent to start");
    await parent.request("watch");
    return parent;
  }

  /** A service instance in B, bound to B's veth address; resolves once the parent sees it registered. */
  async function startService(parent: Parent): Promise<ChildProcess> {
    const argv = pair!.exec(pair!.b, [process.execPath, fixture("curve-service.mjs")]);
    const child = spawn(argv[0]!, argv.slice(1), {
      env: namespaceEnv({
        MULTIFROST_REGISTRY: url,
        MF_SERVICE_ID: SERVICE,
        MF_HOST: pair!.b.address,
        MF_ADVERTISE: pair!.b.address,
        MF_CURVE_PUBLIC: server.publicKey,
        MF_CURVE_SECRET: server.secretKey,
        MF_AUTHORIZED: client.publicKey,
      }),
      stdio: ["ignore", "ignore", "inherit"],
    });
    started.push(child);
    await parent.registry(`instance ${child.pid} to register`, (pids) => pids.includes(child.pid!));
    return child;
  }

  /** A parent in A with a pool following two instances in B, both members connected. */
  async function twoInstancesAndAPool(): Promise<{ parent: Parent; a: ChildProcess; b: ChildProcess }> {
    nextUrl();
    const parent = await startParent();
    const a = await startService(parent);
    const b = await startService(parent);
    await parent.request("pool");
    await parent.members("two connected members", (e) => e.instances.length === 2 && e.states.every((state) => state === "connected"));
    return { parent, a, b };
  }

  it("a parent in one namespace finds both CURVE instances of the other in etcd, at their advertised address, and calls them; a key not authorized is refused", async () => {
    const { parent, a, b } = await twoInstancesAndAPool();
    const entries = await parent.request<{ host: string; pid: number; publicKey: string }[]>("instances");
    expect(entries.map((entry) => entry.pid).sort()).toEqual([a.pid, b.pid].sort());
    for (const entry of entries) expect(entry).toMatchObject({ host: pair!.b.address, publicKey: server.publicKey });
    // least-busy: concurrent calls spread over both instances.
    const pids = await parent.request<number[]>("calls", { count: 20, ms: 100 });
    expect(new Set(pids)).toEqual(new Set([a.pid, b.pid]));
    expect([a.pid, b.pid]).toContain(await parent.request<number>("connect"));
    await expect(parent.request("connect", { stranger: true })).rejects.toThrow(/refused the connection/);
  }, 60_000);

  it("kill -9 of one instance: its lease expires within the TTL and the pool rebalances with no failed idempotent call", async () => {
    const { parent, a, b } = await twoInstancesAndAPool();
    await parent.request("load", { loops: 4, ms: 20 });
    expect(new Set(await parent.request<number[]>("calls", { count: 10, ms: 50 }))).toEqual(new Set([a.pid, b.pid]));
    const from = parent.events.length;
    const killedAt = now();
    b.kill("SIGKILL");
    const gone = await parent.registry("the killed instance's lease to expire", (pids) => !pids.includes(b.pid!), from, TTL_S * 1000 + 5000);
    const rebalanced = await parent.members("the pool to drop the killed member", (e) => e.instances.length === 1, from, TTL_S * 1000 + 5000);
    expect(gone.pids).toEqual([a.pid]);
    expect(gone.at - killedAt).toBeLessThan(TTL_S * 1000 + 3000);
    expect(rebalanced.at - killedAt).toBeLessThan(TTL_S * 1000 + 3000);
    // The survivor takes every call now.
    expect(new Set(await parent.request<number[]>("calls", { count: 10, ms: 20 }))).toEqual(new Set([a.pid]));
    const stats = await parent.request<LoadStats>("loadStop");
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.byPid[String(a.pid)]).toBeGreaterThan(0);
    expect(stats.byPid[String(b.pid)]).toBeGreaterThan(0);
  }, 60_000);

  it("etcd stopped for 5 s: calls keep working, and the registrations are back once it returns", async () => {
    const { parent, a, b } = await twoInstancesAndAPool();
    await parent.request("load", { loops: 4, ms: 20 });
    const before = await parent.request<LoadStats>("loadStats");
    await etcd!.stop();
    const stoppedAt = now();
    await expect(parent.request("instances")).rejects.toThrow(/RegistryError/);
    // The outage is the subject: five seconds without etcd while the load runs.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 5000 - (now() - stoppedAt))));
    const during = await parent.request<LoadStats>("loadStats");
    expect(during.failed).toBe(0);
    expect(during.done - before.done).toBeGreaterThan(50);

    const from = parent.events.length;
    await etcd!.start();
    const back = await parent.registry("both registrations after etcd returns", (pids) => pids.includes(a.pid!) && pids.includes(b.pid!), from, 15_000);
    expect(back.seq).toBeGreaterThan(0);
    // Live registrations, not leftovers: a TTL later they are still there, none ever dropped.
    await new Promise((resolve) => setTimeout(resolve, TTL_S * 1000 + 1000));
    const entries = await parent.request<{ pid: number }[]>("instances");
    expect(entries.map((entry) => entry.pid).sort()).toEqual([a.pid, b.pid].sort());
    const since = parent.events.slice(parent.events.indexOf(back)).filter((e): e is RegistryEvent => e.event === "registry");
    expect(since.every((e) => e.pids.length === 2)).toBe(true);
    // A parent that starts now discovers an instance in etcd and connects to it.
    expect([a.pid, b.pid]).toContain(await parent.request<number>("connect"));
    const members = parent.events.filter((e): e is MembersEvent => e.event === "members").at(-1)!;
    expect(members.instances).toHaveLength(2);
    expect(members.states).toEqual(["connected", "connected"]);
    const stats = await parent.request<LoadStats>("loadStop");
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
  }, 60_000);
});
