import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AbortError, CallTimeoutError, InvalidArgumentError, ProtocolError, RemoteCallError, STREAM_CREDIT, WorkerExitedError, type ParentWorker } from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

/**
 * Streaming (issue 15 item 2, docs/api.md "Streaming", docs/wire.md "Streaming"): a generator
 * method's values come as `chunk`s under credit-based flow control. Real processes throughout.
 */

const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PEER = fileURLToPath(new URL("./peer/mf_peer.py", import.meta.url));

const workers = workerTracker();
afterEach(() => workers.stopAll());
afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Produced {
  produced: number;
  stopped: number;
}

describe("streaming, TS child", () => {
  it("10,000 chunks arrive in order, then the stream ends", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const started = performance.now();
    let expected = 0;
    for await (const value of worker.handle().stream.count(10_000)) {
      expect(value).toBe(expected);
      expected++;
    }
    expect(expected).toBe(10_000);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(worker.pendingCalls).toBe(0);
    // The worker keeps serving plain calls.
    expect(await worker.invoke<Produced>("produced", [])).toEqual({ produced: 0, stopped: 0 });
  });

  it("this.call works inside a generator: each step runs in its own call", async () => {
    const w = workers.spawn(fixture("stream-worker.mjs"));
    await w.start();
    const ids: unknown[] = [];
    for await (const id of w.stream("callIds", [5])) ids.push(id);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(1);
    expect(typeof ids[0]).toBe("string");
  });

  it("a slow consumer keeps the worker at most `credit` chunks ahead", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    let taken = 0;
    let maxAhead = 0;
    for await (const _ of worker.stream("count", [200])) {
      taken++;
      if (taken % 20 === 1) {
        await sleep(150); // the worker runs out of credit meanwhile
        const stats = await worker.invoke<{ chunksSent: number }>("workerStats", []);
        maxAhead = Math.max(maxAhead, stats.chunksSent - taken);
      }
      if (taken === 100) break;
    }
    expect(maxAhead).toBeGreaterThan(0);
    expect(maxAhead).toBeLessThanOrEqual(STREAM_CREDIT);
  });

  it("break stops the producer (cancel reaches the generator)", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    let seen = 0;
    for await (const _ of worker.handle().stream.forever()) {
      if (++seen === 50) break;
    }
    expect(worker.stats.cancelsSent).toBe(1);
    let state: Produced = { produced: 0, stopped: 0 };
    for (let i = 0; i < 100 && state.stopped === 0; i++) {
      await sleep(20);
      state = await worker.invoke<Produced>("produced", []);
    }
    expect(state.stopped).toBe(1); // the generator's finally ran
    const { produced } = state;
    expect(produced).toBeLessThanOrEqual(50 + STREAM_CREDIT + 1);
    await sleep(100);
    expect((await worker.invoke<Produced>("produced", [])).produced).toBe(produced);
  });

  it("a throw in the generator rejects the iterator after the values before it", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const values: unknown[] = [];
    let error: unknown;
    try {
      for await (const value of worker.stream("failAfter", [3])) values.push(value);
    } catch (thrown) {
      error = thrown;
    }
    expect(values).toEqual([0, 1, 2]);
    expect(error).toBeInstanceOf(RemoteCallError);
    expect((error as RemoteCallError).message).toContain("no more");
  });

  it("the timeout applies between chunks: an idle stream rejects with CallTimeoutError and is cancelled", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    let error: unknown;
    try {
      for await (const _ of worker.handle().stream.withOptions({ timeout: 300 }).silent()) {
        /* none */
      }
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(worker.stats.cancelsSent).toBe(1);
  });

  it("a crash mid-stream rejects the iterator with WorkerExitedError", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"), "node", { autoRestart: false });
    await worker.start();
    const values: unknown[] = [];
    let error: unknown;
    try {
      for await (const value of worker.stream("crashAfter", [5])) values.push(value);
    } catch (thrown) {
      error = thrown;
    }
    expect(values).toEqual([0, 1, 2, 3, 4]);
    expect(error).toBeInstanceOf(WorkerExitedError);
  });
});

/** Iterates `stream` to its end or its error; `stopAt`: break after that many values. */
async function drain(stream: AsyncIterable<unknown>, stopAt = Infinity): Promise<{ values: unknown[]; error: unknown; ms: number }> {
  const values: unknown[] = [];
  const started = performance.now();
  let error: unknown;
  try {
    for await (const value of stream) {
      values.push(value);
      if (values.length >= stopAt) break;
    }
  } catch (thrown) {
    error = thrown;
  }
  return { values, error, ms: performance.now() - started };
}

/** Resolves once the worker's `forever` generator has run its `finally` `n` times (the cancel reached it). */
async function generatorStopped(worker: ParentWorker, n = 1): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await worker.invoke<Produced>("produced", [])).stopped < n) {
    if (Date.now() > deadline) throw new Error("the generator's finally never ran");
    await sleep(20);
  }
}

describe("streaming: timeouts, signal, what is counted", () => {
  it("totalTimeout bounds the whole stream: a stream still flowing past it rejects with CallTimeoutError and is cancelled", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const { values, error, ms } = await drain(worker.handle().stream.withOptions({ timeout: 1000, totalTimeout: 300 }).forever());
    expect(values.length).toBeGreaterThan(10); // it kept flowing: never idle for 1 s
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect((error as CallTimeoutError).timeoutMs).toBe(300);
    expect((error as Error).message).toMatch(/timed out after 300ms \(the stream's total timeout \(totalTimeout\) passed\)/);
    expect(ms).toBeLessThan(5000);
    expect(worker.stats.cancelsSent).toBe(1);
    expect(worker.pendingCalls).toBe(0);
    await generatorStopped(worker);
    expect(worker.metrics.counts).toMatchObject({ timeout: 1, cancelled: 0, streams: 1 });
    expect(worker.metrics.counts.chunks).toBeGreaterThanOrEqual(values.length); // received, some maybe not taken
  });

  it("totalTimeout stops a slow consumer too: what is buffered is dropped", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const values: unknown[] = [];
    let error: unknown;
    try {
      for await (const value of worker.stream("count", [1000], { totalTimeout: 200 })) {
        values.push(value);
        await sleep(50); // the worker fills the credit meanwhile
      }
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(values.length).toBeLessThan(10); // not the 16 buffered ones after the deadline
  });

  it("bad stream options throw InvalidArgumentError naming the option, before anything is sent", () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    expect(() => worker.stream("count", [1], { totalTimeout: -1 })).toThrow(InvalidArgumentError);
    expect(() => worker.stream("count", [1], { totalTimeout: 0 })).toThrow("totalTimeout must be a positive number of ms or Infinity, got 0");
    expect(() => worker.handle().stream.withOptions({ totalTimeout: Number.NaN }).count(1)).toThrow("totalTimeout must be a positive number of ms or Infinity, got NaN");
    expect(() => worker.stream("count", [1], { timeout: -5 })).toThrow("timeout must be a positive number of ms or Infinity, got -5");
    expect(() => worker.stream("count", [1], { signal: {} as AbortSignal })).toThrow("signal must be an AbortSignal");
    expect(worker.stats.callsSent).toBe(0);
  });

  it("an aborted signal rejects the iterator with AbortError at once, drops what is buffered and stops the generator", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const ac = new AbortController();
    const values: unknown[] = [];
    let error: unknown;
    let abortedAt = 0;
    try {
      for await (const value of worker.handle().stream.withOptions({ signal: ac.signal }).forever()) {
        values.push(value);
        if (values.length === 20) {
          ac.abort("enough");
          abortedAt = values.length;
        }
      }
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(AbortError);
    expect((error as AbortError).cause).toBe("enough");
    expect(values).toHaveLength(abortedAt);
    expect(worker.stats.cancelsSent).toBe(1);
    await generatorStopped(worker);
    expect(worker.metrics.counts).toMatchObject({ cancelled: 1, timeout: 0, streams: 1 });
  });

  it("an already-aborted signal: the iterator rejects with AbortError and nothing is sent", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    const sent = worker.stats.callsSent;
    const ac = new AbortController();
    ac.abort(new Error("not wanted"));
    const { values, error } = await drain(worker.stream("count", [5], { signal: ac.signal }));
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(AbortError);
    expect(worker.stats.callsSent).toBe(sent);
  });

  it("a stream counts as one call under its outcome, with its chunks, never in the latency histogram", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"));
    await worker.start();
    await drain(worker.stream("count", [100]));
    await drain(worker.stream("forever"), 10);
    await drain(worker.stream("failAfter", [3]));
    await drain(worker.stream("silent", [], { timeout: 100 }));
    const { calls, latencyMs } = worker.snapshot();
    expect(calls).toMatchObject({ ok: 1, cancelled: 1, remoteErrors: 1, timedOut: 1, failed: 2, streams: 4 });
    // 100 + 3, and the 10 taken before the break plus what had arrived unread (at most the credit).
    expect(calls.chunks).toBeGreaterThanOrEqual(113);
    expect(calls.chunks).toBeLessThanOrEqual(103 + STREAM_CREDIT);
    expect(latencyMs.count).toBe(0);
    expect(worker.metrics.latency.count).toBe(0);
    await worker.invoke("produced", []);
    expect(worker.snapshot()).toMatchObject({ calls: { ok: 2, streams: 4 }, latencyMs: { count: 1 } });
  });

  it("breaking out of streams never trips the circuit breaker; their timeouts do, as a call's", async () => {
    const worker = workers.spawn(fixture("stream-worker.mjs"), "node", { circuitBreaker: { consecutiveFailures: 2, minRequests: 100 } });
    await worker.start();
    for (let i = 0; i < 5; i++) await drain(worker.stream("forever"), 3);
    expect(worker.metrics.counts.cancelled).toBe(5);
    expect(worker.state).toBe("connected");
    await drain(worker.stream("silent", [], { timeout: 100 }));
    await drain(worker.stream("silent", [], { timeout: 1000, totalTimeout: 100 }));
    await waitFor(() => worker.state === "circuit-open", 5000, "the circuit to open");
    expect(worker.metrics.counts.timeout).toBe(2);
  });
});

describe("streaming, v4 peer", () => {
  it("a stream to a v4 peer rejects clearly", async () => {
    const worker = workers.spawn(PEER, PYTHON, { args: ["child"] });
    await worker.start();
    let error: unknown;
    try {
      for await (const _ of worker.stream("echo", ["hi"])) {
        /* none */
      }
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/does not stream \(a v4 peer\?\)/);
    expect(worker.state).toBe("connected");
  });
});
