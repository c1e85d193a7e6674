import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ProtocolError, RemoteCallError, STREAM_CREDIT, WorkerExitedError, type ParentWorker, type SpawnOptions } from "../src/index.js";
import { rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

/**
 * The TS parent streams from a Python-library worker (docs/python.md, Streaming; docs/wire.md,
 * Streaming): sync generators (stepped in the worker's thread pool) and async generators (on its
 * asyncio loop) under credit-based flow control. The worker runs under Debian's /usr/bin/python3
 * with PYTHONPATH pointing at python/src, as in python-library.test.ts. Real processes throughout.
 */
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_ENV = { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":") };
const WORKER = fileURLToPath(new URL("./fixtures/python-lib/stream_worker.py", import.meta.url));

const workers = workerTracker();
afterEach(() => workers.stopAll());
afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startWorker(options: SpawnOptions = {}): Promise<ParentWorker> {
  const worker = workers.spawn(WORKER, PYTHON, { name: "pystream", env: PY_ENV, ...options });
  await worker.start();
  return worker;
}

interface Produced {
  produced: number;
  stopped: number;
  chunksSent: number;
}

interface Stopped {
  produced: number;
  stopped: number;
  cancelled: boolean | null;
}

/** Reads a stream to its end; the values before the error, and the error (undefined when it ended). */
async function drain(stream: AsyncIterable<unknown>): Promise<{ values: unknown[]; error: unknown }> {
  const values: unknown[] = [];
  try {
    for await (const value of stream) values.push(value);
  } catch (error) {
    return { values, error };
  }
  return { values, error: undefined };
}

const KINDS = [
  ["sync generator", "s"],
  ["async generator", "a"],
] as const;

describe.each(KINDS)("a Python %s", (_kind, p) => {
  it("streams 10,000 values in order, then ends", async () => {
    const worker = await startWorker();
    const started = performance.now();
    let expected = 0;
    for await (const value of worker.stream(`${p}_count`, [10_000])) {
      expect(value).toBe(expected);
      expected++;
    }
    expect(expected).toBe(10_000);
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(worker.pendingCalls).toBe(0);
    expect(await worker.invoke<number>("plain", [21])).toBe(42); // still serving plain calls
  });

  it("stays at most `credit` values ahead of a slow consumer", async () => {
    const worker = await startWorker();
    let taken = 0;
    let maxAhead = 0;
    for await (const _ of worker.stream(`${p}_forever`, [])) {
      taken++;
      if (taken % 20 === 1) {
        await sleep(100); // the worker runs out of credit meanwhile
        const { produced, chunksSent } = await worker.invoke<Produced>("produced", []);
        maxAhead = Math.max(maxAhead, produced - taken, chunksSent - taken);
      }
      if (taken === 100) break;
    }
    expect(maxAhead).toBeGreaterThan(0);
    expect(maxAhead).toBeLessThanOrEqual(STREAM_CREDIT);
  });

  it("break stops the producer: its finally runs, with self.call.cancelled set", async () => {
    const worker = await startWorker();
    let seen = 0;
    for await (const _ of worker.stream(`${p}_forever`, [])) {
      if (++seen === 50) break;
    }
    expect(worker.stats.cancelsSent).toBe(1);
    const state = await worker.invoke<Stopped>("wait_stopped", [10]);
    expect(state.stopped).toBe(1);
    expect(state.cancelled).toBe(true);
    expect(state.produced).toBeGreaterThanOrEqual(50);
    expect(state.produced).toBeLessThanOrEqual(50 + STREAM_CREDIT);
  });

  it("a raise mid-stream rejects the iterator with the remote error after the values before it", async () => {
    const worker = await startWorker();
    const { values, error } = await drain(worker.stream(`${p}_fail_after`, [3]));
    expect(values).toEqual([0, 1, 2]);
    expect(error).toBeInstanceOf(RemoteCallError);
    expect((error as RemoteCallError).message).toContain("ValueError: no more");
  });

  it("called without stream, it is an EncodeError (as with a TS worker)", async () => {
    const worker = await startWorker();
    const error = await rejectionOf(worker.invoke(`${p}_count`, [3]));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.message).toMatch(/EncodeError: cannot send a value of type (async_)?generator/);
  });
});

describe("a Python worker's streams, further", () => {
  it("a value that cannot be sent ends the stream with an EncodeError and closes the generator", async () => {
    const worker = await startWorker();
    const { values, error } = await drain(worker.stream("s_unsendable", []));
    expect(values).toEqual([1]);
    expect(error).toBeInstanceOf(RemoteCallError);
    expect((error as Error).message).toContain("EncodeError: cannot send a value of type object");
    expect((await worker.invoke<Stopped>("wait_stopped", [10])).stopped).toBe(1);
  });

  it("self.call inside a generator is the streamed call", async () => {
    const worker = await startWorker();
    const { values } = await drain(worker.stream("s_call_ids", [5]));
    expect(values).toHaveLength(5);
    expect(new Set(values).size).toBe(1);
    expect(values[0]).toMatch(/^[0-9a-f]{32}$/);
  });

  it("a plain method called as a stream answers with one plain result (ProtocolError), None with an empty stream", async () => {
    const worker = await startWorker();
    const { values, error } = await drain(worker.stream("plain", [21]));
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/does not stream/);
    expect(await drain(worker.stream("nothing", []))).toEqual({ values: [], error: undefined });
    expect(worker.state).toBe("connected");
  });

  it.each(["kill -9", "os._exit"])("a crash mid-stream (%s) rejects the iterator with WorkerExitedError", async (how) => {
    const worker = await startWorker({ autoRestart: false });
    const values: unknown[] = [];
    let error: unknown;
    try {
      for await (const value of worker.stream("s_then_wait", [5])) {
        values.push(value);
        if (values.length === 5) {
          if (how === "kill -9") process.kill(worker.pid!, "SIGKILL");
          else void worker.invoke("exit_now", []).catch(() => undefined);
        }
      }
    } catch (thrown) {
      error = thrown;
    }
    expect(values).toEqual([0, 1, 2, 3, 4]);
    expect(error).toBeInstanceOf(WorkerExitedError);
  });

  it("heartbeats are answered while a sync generator waits for credit: a long stall is not a hang", async () => {
    const worker = await startWorker({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 200, heartbeatMaxMisses: 2 });
    const pid = worker.pid;
    const iterator = worker.stream("s_forever", [])[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(1);
    const answeredBefore = await worker.invoke<number>("heartbeats_answered", []);
    // The consumer stops pulling for 10 heartbeat intervals; the producer runs dry of credit.
    const states = new Set<string>();
    let maxMisses = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(50);
      states.add(worker.state);
      maxMisses = Math.max(maxMisses, worker.heartbeatMisses);
    }
    expect((await worker.invoke<Produced>("produced", [])).produced).toBe(STREAM_CREDIT); // waiting, not resumed
    expect(await worker.invoke<number>("heartbeats_answered", [])).toBeGreaterThanOrEqual(answeredBefore + 5);
    expect([...states]).toEqual(["connected"]);
    expect(maxMisses).toBe(0);
    // The stream carries on where it stopped.
    for (let expected = 2; expected <= 100; expected++) expect((await iterator.next()).value).toBe(expected);
    await iterator.return!();
    expect((await worker.invoke<Stopped>("wait_stopped", [10])).stopped).toBe(1);
    expect(worker.pid).toBe(pid);
  });
});
