import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { CallTimeoutError, ProtocolError, RemoteCallError, STREAM_CREDIT, WorkerExitedError } from "../src/index.js";
import { fixture, workerTracker } from "./helpers/fixtures.js";
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
