/**
 * A spawned ChildWorker whose parent is gone exits even when its ppid says nothing (a `/bin/sh`
 * wrapper between them outlives the parent): the parent's connection staying down for
 * `orphanGraceMs` is enough. A worker that has not connected yet, or that reconnects within the
 * grace, keeps running.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import * as zmq from "zeromq";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createHeartbeat, encodeMessage, nextMessageId, parseFrame } from "../src/wire/index.js";
import { fixture } from "./helpers/fixtures.js";
import { descendants, isAlive, reapAll, waitFor } from "./helpers/processes.js";

/** Processes this file started; afterEach SIGKILLs whatever is left. */
const children: ChildProcess[] = [];
/** Pids and process groups started on our behalf by a parent fixture. */
const strays: number[] = [];
const dealers: zmq.Dealer[] = [];

afterEach(async () => {
  for (const dealer of dealers.splice(0)) dealer.close();
  for (const pid of strays.splice(0)) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // ESRCH: already gone
      }
    }
  }
  await reapAll(children);
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by child-orphans tests");
});

/** A port nothing listens on (the OS just handed it out and it was released). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

/** Runs grace-worker.mjs in spawn mode against `port`, as a parent would. */
function spawnGraceWorker(port: number, graceMs: number): ChildProcess {
  const env = { ...process.env, COMLINK_ZMQ_PORT: String(port), MF_ORPHAN_GRACE_MS: String(graceMs) };
  const child = spawn(process.execPath, [fixture("grace-worker.mjs")], { env, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  return child;
}

/** A raw parent: a DEALER bound on `port` (retried while a just-closed socket still holds it). */
async function bindDealer(port: number): Promise<zmq.Dealer> {
  const dealer = new zmq.Dealer({ linger: 0 });
  dealers.push(dealer);
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      await dealer.bind(`tcp://127.0.0.1:${port}`);
      return dealer;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** One heartbeat through `dealer`, answered by the worker. */
async function heartbeat(dealer: zmq.Dealer): Promise<void> {
  const id = nextMessageId();
  await dealer.send([Buffer.alloc(0), encodeMessage(createHeartbeat(id))]);
  for (;;) {
    const frames = await dealer.receive();
    const reply = parseFrame(frames[frames.length - 1]!);
    if ("id" in reply && reply.id === id) return;
  }
}

function closeDealer(dealer: zmq.Dealer): void {
  dealers.splice(dealers.indexOf(dealer), 1);
  dealer.close();
}

describe("orphaned spawn-mode workers", () => {
  it("a worker behind a /bin/sh wrapper exits when its parent is SIGKILLed, though the shell stays", async () => {
    const parent = spawn(process.execPath, [fixture("sh-orphan-parent.mjs")], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(parent);
    let output = "";
    parent.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    parent.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    await waitFor(() => /PIDS \d+ \d+/.test(output) || parent.exitCode !== null, 10_000, "the parent to print its worker's pids");
    const [, shellText, workerText] = /PIDS (\d+) (\d+)/.exec(output) ?? [];
    const shell = Number(shellText);
    const worker = Number(workerText);
    expect(shell, output).toBeGreaterThan(0);
    strays.push(shell, worker); // the shell leads the worker's process group
    expect(descendants(parent.pid)).toEqual([shell, worker]); // parent → sh → worker

    const killedAt = Date.now();
    parent.kill("SIGKILL");
    await once(parent, "close");
    expect(isAlive(shell)).toBe(true); // the shell outlives the parent, so the worker's ppid stays the same
    await waitFor(() => !isAlive(worker), 5000, `orphaned worker ${worker} to exit`);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeGreaterThanOrEqual(1500); // the default 2 s grace, loosely
    console.info(`orphaned worker exited ${tookMs} ms after its parent's SIGKILL`);
    await waitFor(() => !isAlive(shell), 5000, `wrapper shell ${shell} to follow its worker`);
  });

  it("a worker whose parent has not bound yet keeps waiting past the grace, then serves", async () => {
    const port = await freePort();
    const worker = spawnGraceWorker(port, 100);
    // Nothing to await for "still running": give it several graces (and its start) to do wrong.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(worker.exitCode).toBeNull();
    expect(isAlive(worker.pid!)).toBe(true);
    const dealer = await bindDealer(port);
    await heartbeat(dealer);

    // Connected once: losing the parent now ends it.
    const closedAt = Date.now();
    closeDealer(dealer);
    await waitFor(() => worker.exitCode !== null, 5000, "the worker to exit once its parent is gone");
    expect(worker.exitCode).toBe(0);
    expect(Date.now() - closedAt).toBeLessThan(5000);
  });

  it("a reconnection within the grace cancels it", async () => {
    const graceMs = 2000;
    const port = await freePort();
    const worker = spawnGraceWorker(port, graceMs);
    const first = await bindDealer(port);
    await heartbeat(first);
    const closedAt = Date.now();
    closeDealer(first);
    const second = await bindDealer(port); // the same port: zeromq reconnects by itself
    await heartbeat(second);
    expect(Date.now() - closedAt).toBeLessThan(graceMs);
    // Past the disconnection's grace: still there, still answering.
    await new Promise((resolve) => setTimeout(resolve, closedAt + graceMs + 500 - Date.now()));
    expect(worker.exitCode).toBeNull();
    await heartbeat(second);
  });
});
