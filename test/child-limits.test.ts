/**
 * What a peer cannot make a TS worker do: stop a service with one `shutdown` message, grow its
 * call queue or its output buffers without bound, or overflow its stack with a huge argument
 * list — and a parent whose stdout nobody reads does not grow either. Real processes; memory is
 * read from /proc/<pid>/status.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Packr, Unpackr } from "msgpackr";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { fixture, workerTracker } from "./helpers/fixtures.js";
import { descendants, isAlive, reapAll, waitFor } from "./helpers/processes.js";
import { serviceHarness } from "./helpers/services.js";

const WORKER = fixture("limits/limits-worker.mjs");
const PRINTING_PARENT = fixture("limits/printing-parent.mjs");
const MB = 1024 * 1024;

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

const tracked = workerTracker();
const harness = serviceHarness("multifrost-limits-");
const peers: RawPeer[] = [];

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close();
  await tracked.stopAll();
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

/** Resident memory of a process, in bytes. */
function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match![1]) * 1024;
}

/** Samples a process's RSS every 50 ms; `stop()` returns the largest seen. */
function watchRss(pid: number): { stop(): number } {
  let max = rssOf(pid);
  const sample = () => {
    try {
      max = Math.max(max, rssOf(pid));
    } catch {
      // exited
    }
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return max;
    },
  };
}

interface Reply {
  id: string;
  type: string;
  result?: unknown;
  error?: string;
}

/** A hand-written v4 parent: a DEALER connected to a service, plain msgpack maps. */
interface RawPeer {
  send(message: Record<string, unknown>): Promise<void>;
  call(fn: string, args: unknown[]): Promise<string>;
  heartbeat(): Promise<string>;
  /** Replies by id (every reply the receive loop has read). */
  readonly replies: Map<string, Reply>;
  /** Starts the receive loop (a peer that never starts it never reads). */
  listen(): void;
  close(): void;
}

async function rawPeer(port: number): Promise<RawPeer> {
  const socket = new Dealer({ linger: 0 });
  socket.connect(`tcp://127.0.0.1:${port}`);
  const replies = new Map<string, Reply>();
  const send = (message: Record<string, unknown>) =>
    socket.send([Buffer.alloc(0), packr.pack({ app: "comlink_ipc_v4", id: randomUUID(), timestamp: Date.now() / 1000, ...message })]);
  const peer: RawPeer = {
    replies,
    send,
    async call(fn, args) {
      const id = randomUUID();
      await send({ id, type: "call", function: fn, args, namespace: "default" });
      return id;
    },
    async heartbeat() {
      const id = randomUUID();
      await send({ id, type: "heartbeat", metadata: {} });
      return id;
    },
    listen() {
      void (async () => {
        try {
          for (;;) {
            const frames = await socket.receive();
            const message = unpackr.unpack(frames[frames.length - 1]!) as Reply;
            replies.set(message.id, message);
          }
        } catch {
          // closed
        }
      })();
    },
    close() {
      socket.close();
    },
  };
  peers.push(peer);
  return peer;
}

async function reply(peer: RawPeer, id: string, timeoutMs = 10_000): Promise<Reply> {
  await waitFor(() => peer.replies.has(id), timeoutMs, `the reply to ${id}`);
  return peer.replies.get(id)!;
}

async function startService(serviceId: string, limits: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const service = await harness.startService(serviceId, process.execPath, [WORKER], { MF_LIMITS: JSON.stringify(limits), ...env });
  const entry = JSON.parse(readFileSync(join(harness.registryDir, "services.json"), "utf8"))[serviceId] as { port: number };
  return { ...service, port: entry.port, pid: service.process.pid! };
}

describe("shutdown messages", () => {
  it("a service ignores shutdown by default, counts it and logs it once", async () => {
    const service = await startService("ignores-shutdown");
    const peer = await rawPeer(service.port);
    peer.listen();
    await reply(peer, await peer.heartbeat());
    for (let i = 0; i < 3; i++) await peer.send({ type: "shutdown" });
    const stats = await reply(peer, await peer.call("workerStats", []));
    expect((stats.result as { rejected: Record<string, number> }).rejected["shutdown-refused"]).toBe(3);
    expect(isAlive(service.pid)).toBe(true);
    // stderr is a pipe of its own: its line may arrive after the stats reply.
    await waitFor(() => /ignored a 'shutdown' message/.test(service.stderr()), 5000, "the logged refusal");
    expect(service.stderr().match(/ignored a 'shutdown' message/g)).toHaveLength(1);
  });

  it("a service started with acceptShutdown: true stops on shutdown", async () => {
    const service = await startService("obeys-shutdown", { acceptShutdown: true });
    const peer = await rawPeer(service.port);
    peer.listen();
    await reply(peer, await peer.heartbeat());
    await peer.send({ type: "shutdown" });
    const [code] = (await once(service.process, "exit")) as [number | null];
    expect(code).toBe(0);
    expect(readFileSync(join(harness.registryDir, "services.json"), "utf8")).not.toContain("obeys-shutdown");
  });

  it("a spawned worker obeys shutdown by default (the parent's graceful stop)", async () => {
    const worker = tracked.spawn(WORKER);
    await worker.start();
    const pid = worker.pid!;
    const started = Date.now();
    await worker.stop();
    // shutdownTimeoutMs (2 s) would pass before SIGTERM had the child not obeyed the message.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(isAlive(pid)).toBe(false);
  });
});

describe("output forwarding goes to callers only", () => {
  it("a peer that only connects, or only sends shutdown, gets no output; one that pinged does", async () => {
    const service = await startService("output-peers");
    const silent = await rawPeer(service.port);
    silent.listen();
    await silent.send({ type: "shutdown" });
    await silent.send({ type: "stdout", output: "not a call" });
    const pinger = await rawPeer(service.port);
    pinger.listen();
    await reply(pinger, await pinger.heartbeat());
    await reply(pinger, await pinger.call("printInBackground", [1000])); // 10 lines
    await waitFor(() => [...pinger.replies.values()].filter((m) => m.type === "stdout").length === 10, 5000, "10 lines");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(silent.replies.size).toBe(0);
  });
});

describe("the call queue is bounded", () => {
  it("300k calls from one peer: beyond maxQueuedCalls each gets a BusyError at once, heartbeats are answered, memory stays bounded", async () => {
    const service = await startService("queue-bound", { concurrency: 2, maxQueuedCalls: 100 });
    const rss = watchRss(service.pid);
    const peer = await rawPeer(service.port);
    peer.listen();
    const total = 300_000;
    const ids: string[] = [];
    const heartbeats: string[] = [];
    for (let i = 0; i < total; i++) {
      ids.push(await peer.call("slow", [20]));
      if (i % 30_000 === 0) heartbeats.push(await peer.heartbeat());
    }
    await waitFor(() => ids.every((id) => peer.replies.has(id)), 60_000, "every call answered");
    const maxRss = rss.stop();
    let busy = 0;
    let done = 0;
    for (const id of ids) {
      const message = peer.replies.get(id)!;
      if (message.type === "response") done++;
      else if (message.type === "error" && message.error!.startsWith("BusyError: ")) busy++;
    }
    expect(busy + done).toBe(total);
    expect(done).toBeGreaterThanOrEqual(102);
    expect(busy).toBeGreaterThan(total * 0.9);
    for (const id of heartbeats) expect(peer.replies.get(id)?.type, "heartbeat answered").toBe("heartbeat");
    const stats = (await reply(peer, await peer.call("workerStats", []))).result as { callsRefusedBusy: number; rss: number };
    expect(stats.callsRefusedBusy).toBe(busy);
    console.log(`300k calls: ${busy} busy, ${done} run; service max RSS ${(maxRss / MB).toFixed(0)} MB`);
    expect(maxRss).toBeLessThan(200 * MB);
    expect(isAlive(service.pid)).toBe(true);
  }, 120_000);

  it("a 1,000,000-argument call gets a clear error reply and the worker lives on", async () => {
    const service = await startService("many-args");
    const peer = await rawPeer(service.port);
    peer.listen();
    const started = performance.now();
    const big = await reply(peer, await peer.call("count", new Array(1_000_000).fill(1)));
    console.log(`1,000,000 arguments: error reply in ${(performance.now() - started).toFixed(0)} ms`);
    expect(big.type).toBe("error");
    expect(big.error).toMatch(/^InvalidArgumentError: call to 'count' passes 1000000 arguments; this worker accepts at most 65536 \(maxArgs\)/);
    expect((await reply(peer, await peer.call("count", new Array(65_536).fill(1)))).result).toBe(65_536);
    expect((await reply(peer, await peer.heartbeat())).type).toBe("heartbeat");
    expect(isAlive(service.pid)).toBe(true);
  });
});

describe("output respects backpressure", () => {
  it("a service printing 200 MB to a stdout pipe nobody reads drops lines, counts them, stays bounded", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-limits-report-"));
    const reportFile = join(dir, "report.json");
    const child: ChildProcess = spawn(process.execPath, [WORKER], {
      env: { ...process.env, MULTIFROST_REGISTRY_DIR: harness.registryDir, MF_SERVICE_ID: "unread-pipe", MF_PRINT_AT_START: String(200 * MB), MF_REPORT: reportFile },
      stdio: ["ignore", "pipe", "ignore"], // stdout: never read
    });
    harness.processes.push(child);
    try {
      await waitFor(() => child.pid !== undefined && existsSync(`/proc/${child.pid}/status`), 5000, "the child");
      const rss = watchRss(child.pid!);
      await waitFor(() => existsSync(reportFile), 90_000, "the printing to end");
      const maxRss = rss.stop();
      const report = JSON.parse(readFileSync(reportFile, "utf8")) as { lines: number; linesDropped: number };
      console.log(`unread stdout pipe: ${report.lines} lines printed, ${report.linesDropped} dropped; max RSS ${(maxRss / MB).toFixed(0)} MB`);
      expect(report.linesDropped).toBeGreaterThan(0);
      expect(maxRss).toBeLessThan(200 * MB);
    } finally {
      await reapAll(harness.processes);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("a service printing 200 MB to a parent that stops reading drops lines, counts them, stays bounded", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-limits-report-"));
    const reportFile = join(dir, "report.json");
    try {
      const service = await startService("unread-parent", {}, { MF_REPORT: reportFile });
      const rss = watchRss(service.pid);
      // Pings (so it gets the output), asks for 200 MB of it, and never reads.
      const peer = await rawPeer(service.port);
      await peer.heartbeat();
      await peer.call("printInBackground", [200 * MB]);
      await waitFor(() => existsSync(reportFile), 90_000, "the printing to end");
      const maxRss = rss.stop();
      const report = JSON.parse(readFileSync(reportFile, "utf8")) as { lines: number; linesDropped: number; linesForwarded: number };
      console.log(
        `unread forwarded output: ${report.lines} lines printed, ${report.linesForwarded} forwarded, ${report.linesDropped} dropped; max RSS ${(maxRss / MB).toFixed(0)} MB`,
      );
      expect(report.linesDropped).toBeGreaterThan(0);
      expect(maxRss).toBeLessThan(200 * MB);
      // The stalled peer does not make the service deaf to the others.
      const other = await rawPeer(service.port);
      other.listen();
      expect((await reply(other, await other.heartbeat(), 5000)).type).toBe("heartbeat");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("a parent's default printing to a stdout pipe nobody reads drops lines and stays bounded", async () => {
    const parent = spawn(process.execPath, [PRINTING_PARENT, WORKER], {
      env: { ...process.env, MF_BYTES: String(200 * MB) },
      stdio: ["ignore", "pipe", "pipe"], // stdout: never read
    });
    harness.processes.push(parent);
    let stderr = "";
    parent.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    await waitFor(() => existsSync(`/proc/${parent.pid}/status`), 5000, "the parent");
    const rss = watchRss(parent.pid!);
    const [code] = (await once(parent, "exit")) as [number | null];
    const maxRss = rss.stop();
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stderr.trim().split("\n").at(-1)!) as { dropped: number };
    console.log(`parent default printing, unread stdout: ${report.dropped} lines dropped; parent max RSS ${(maxRss / MB).toFixed(0)} MB`);
    expect(report.dropped).toBeGreaterThan(0);
    expect(maxRss).toBeLessThan(200 * MB);
  }, 120_000);
});
