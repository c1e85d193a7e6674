import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { tracingChannel } from "node:diagnostics_channel";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { IncomingCall } from "../src/child/call-context.js";
import { CallTracing } from "../src/observability/call-tracing.js";
import { CALL_CHANNEL, type CallChannelContext } from "../src/index.js";
import { createCall, encodeMessage, nextMessageId } from "../src/wire/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const TRACED = fixture("traced-worker.mjs");
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_WORKER = fixture("python-lib/interop_worker.py");
const workers = workerTracker();

interface ChildContext {
  id: string;
  function: string;
  namespace: string;
  traceparent: string | null;
  tracestate: string | null;
  deadline: number | null;
  aborted: boolean;
  metadataKeys: string[];
}

interface ChildSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  status: { code: number; message?: string };
}

afterEach(async () => {
  await workers.stopAll();
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

describe("without an SDK and without subscribers", () => {
  it("calls carry no metadata, and a call encodes as before", async () => {
    expect(new CallTracing("w").on).toBe(false);
    const w = workers.spawn(TRACED, "node", { name: "plain" });
    await w.start();
    const seenByChild = (await w.call.context()) as ChildContext;
    expect(seenByChild).toMatchObject({ function: "context", namespace: "default", traceparent: null, tracestate: null, deadline: null, aborted: false, metadataKeys: [] });
    // The encoding the parent uses without metadata: unchanged, within zeromq.js's 128-byte copy.
    expect(encodeMessage(createCall(nextMessageId(), "add", [1, 2])).length).toBeLessThanOrEqual(128);
    const plain = { ...createCall("x", "add", [1, 2]), timestamp: 1 };
    expect(encodeMessage({ ...createCall("x", "add", [1, 2], "default", undefined, undefined), timestamp: 1 })).toEqual(encodeMessage(plain));
  });

  it("this.call: each async handler sees its own call; outside a handler it throws a clear error", async () => {
    const w = workers.spawn(TRACED, "node", { name: "ctx" });
    await w.start();
    const results = (await Promise.all([40, 10, 25, 1, 30].map((ms, tag) => w.call.sameCallAcrossAwait(tag, ms)))) as { tag: number; id: string; same: boolean }[];
    expect(results.map((r) => r.same)).toEqual([true, true, true, true, true]);
    expect(new Set(results.map((r) => r.id)).size).toBe(5);
    expect(await w.call.outsideCall()).toBe("this.call is only available while a handler runs (use currentCall() to test for one) | currentCall: undefined");
  });

  it("reads metadata.deadline (seconds on the wire) as ms since the epoch, and ignores what is not a string or number", () => {
    const call = new IncomingCall(createCall("i", "f", [], "default", undefined, { deadline: 1_700_000_000.25, traceparent: 5, tracestate: "a=b" }));
    expect(call.deadline).toBe(1_700_000_000_250);
    expect(call.traceparent).toBeUndefined();
    expect(call.tracestate).toBe("a=b");
    expect(call.signal.aborted).toBe(false);
    expect(new IncomingCall(createCall("i", "f", [])).metadata).toEqual({});
  });
});

describe("diagnostics_channel", () => {
  it("multifrost:call on the parent and multifrost:handle on the child see start and end", async () => {
    const events: { event: string; context: CallChannelContext }[] = [];
    const record = (event: string) => (context: CallChannelContext) => events.push({ event, context: { ...context } });
    const handlers = { start: record("start"), end: record("end"), asyncStart: record("asyncStart"), asyncEnd: record("asyncEnd"), error: record("error") };
    const channel = tracingChannel<unknown, CallChannelContext>(CALL_CHANNEL);
    const w = workers.spawn(TRACED, "node", { name: "root/traced", env: { MF_HANDLE_EVENTS: "1" } });
    await w.start();
    channel.subscribe(handlers);
    try {
      expect(new CallTracing("w").on).toBe(true);
      expect(await w.call.add(2, 3)).toBe(5);
      await rejectionOf(w.call.failLater("nope"));
    } finally {
      channel.unsubscribe(handlers);
    }
    expect(new CallTracing("w").on).toBe(false);
    const add = events.filter((e) => e.context.functionName === "add");
    expect(add.map((e) => e.event)).toEqual(["start", "end", "asyncStart", "asyncEnd"]);
    expect(add[0]!.context).toMatchObject({ functionName: "add", args: [2, 3], workerPath: "root/traced", id: expect.any(String) });
    expect(add[3]!.context.result).toBe(5);
    const failed = events.filter((e) => e.context.functionName === "failLater");
    expect(failed.map((e) => e.event)).toEqual(["start", "end", "error", "asyncStart", "asyncEnd"]);
    expect(String(failed[2]!.context.error)).toMatch(/RangeError: nope/);

    // The child's channel: sync handlers start/end, async ones asyncStart/asyncEnd too.
    const seen = (await w.call.handleEvents()) as { event: string; functionName: string; id: string; error?: string }[];
    const childAdd = seen.filter((e) => e.functionName === "add");
    expect(childAdd.map((e) => e.event)).toEqual(["start", "end"]);
    expect(childAdd[0]!.id).toBe(add[0]!.context.id);
    expect(seen.filter((e) => e.functionName === "failLater").map((e) => e.event)).toEqual(["start", "end", "error", "asyncStart", "asyncEnd"]);
  });
});

describe("diagnostics_channel, streams", () => {
  it("multifrost:call sees a stream as one call: start/end when it is sent, asyncStart/asyncEnd when it ends, with its chunks", async () => {
    const events: { event: string; context: CallChannelContext }[] = [];
    const record = (event: string) => (context: CallChannelContext) => events.push({ event, context: { ...context } });
    const handlers = { start: record("start"), end: record("end"), asyncStart: record("asyncStart"), asyncEnd: record("asyncEnd"), error: record("error") };
    const channel = tracingChannel<unknown, CallChannelContext>(CALL_CHANNEL);
    const w = workers.spawn(TRACED, "node", { name: "root/streams" });
    await w.start();
    channel.subscribe(handlers);
    try {
      for await (const _ of w.stream("tracedCount", [3])) {
        /* all three */
      }
      await rejectionOf(drainAll(w.stream("failStream", [2])));
    } finally {
      channel.unsubscribe(handlers);
    }
    const counted = events.filter((e) => e.context.functionName === "tracedCount");
    expect(counted.map((e) => e.event)).toEqual(["start", "end", "asyncStart", "asyncEnd"]);
    expect(counted[0]!.context).toMatchObject({ functionName: "tracedCount", args: [3], workerPath: "root/streams", stream: true });
    expect(counted[3]!.context).toMatchObject({ chunks: 3 });
    expect(counted[3]!.context.error).toBeUndefined();
    const failed = events.filter((e) => e.context.functionName === "failStream");
    expect(failed.map((e) => e.event)).toEqual(["start", "end", "error", "asyncStart", "asyncEnd"]);
    expect(failed[4]!.context).toMatchObject({ chunks: 2 });
    expect(String(failed[4]!.context.error)).toMatch(/RangeError: stream broke/);
  });
});

/** Iterates a stream to its end; rejects with its error. */
async function drainAll(stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const values: unknown[] = [];
  for await (const value of stream) values.push(value);
  return values;
}

describe("with an OpenTelemetry SDK", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const clientSpans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name);

  beforeAll(() => {
    // Before the workers exist: each checks for a tracer provider once, when created.
    trace.setGlobalTracerProvider(provider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });

  afterAll(async () => {
    trace.disable();
    propagation.disable();
    context.disable();
    await provider.shutdown();
  });

  it("each call is a client span whose traceparent reaches the TS child, which continues it in a server span", async () => {
    const lines: string[] = [];
    const w = workers.spawn(TRACED, "node", { name: "root/traced", env: { MF_TRACE_SDK: "1" }, onOutput: (_stream, line) => lines.push(line) });
    await w.start();
    exporter.reset();
    const seenByChild = (await w.call.context()) as ChildContext;
    const [span] = clientSpans("context");
    expect(span).toBeDefined();
    expect(span!.kind).toBe(SpanKind.CLIENT);
    expect(span!.attributes).toMatchObject({ "rpc.system": "multifrost", "rpc.method": "context", "multifrost.worker.path": "root/traced" });
    const { traceId, spanId } = span!.spanContext();
    expect(seenByChild.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(seenByChild.metadataKeys).toEqual(["traceparent"]);

    await waitFor(() => lines.some((line) => line.startsWith("SPAN ") && line.includes('"name":"context"')), 5000, "the child's server span");
    const server = lines.filter((line) => line.startsWith("SPAN ")).map((line) => JSON.parse(line.slice(5)) as ChildSpan).find((s) => s.name === "context")!;
    expect(server).toMatchObject({ kind: SpanKind.SERVER, traceId, parentSpanId: spanId });
  });

  it("remote errors and timeouts mark the client span ERROR with the exception recorded", async () => {
    const lines: string[] = [];
    const w = workers.spawn(TRACED, "node", { name: "root/traced", env: { MF_TRACE_SDK: "1" }, onOutput: (_stream, line) => lines.push(line) });
    await w.start();
    exporter.reset();
    await rejectionOf(w.call.fail("bad input"));
    const [failed] = clientSpans("fail");
    expect(failed!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringContaining("bad input") });
    expect(failed!.attributes["error.type"]).toBe("RemoteCallError");
    expect(failed!.events.map((event) => event.name)).toContain("exception");
    await waitFor(() => lines.some((line) => line.includes('"name":"fail"')), 5000, "the child's server span for fail");
    const server = JSON.parse(lines.find((line) => line.includes('"name":"fail"'))!.slice(5)) as ChildSpan;
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.traceId).toBe(failed!.spanContext().traceId);

    await rejectionOf(w.call.withOptions({ timeout: 50 }).sameCallAcrossAwait(0, 1000));
    const [timedOut] = clientSpans("sameCallAcrossAwait");
    expect(timedOut!.status.code).toBe(SpanStatusCode.ERROR);
    expect(timedOut!.attributes["error.type"]).toBe("CallTimeoutError");
  });

  it("a call made inside an active span is its child (with a context manager registered)", async () => {
    const w = workers.spawn(TRACED, "node", { name: "nested" });
    await w.start();
    exporter.reset();
    const tracer = trace.getTracer("test");
    const outer = tracer.startSpan("outer");
    const result = (await context.with(trace.setSpan(context.active(), outer), () => w.call.context())) as ChildContext;
    outer.end();
    const [span] = clientSpans("context");
    expect(span!.spanContext().traceId).toBe(outer.spanContext().traceId);
    expect(span!.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
    expect(result.traceparent).toContain(outer.spanContext().traceId);
  });

  it("a stream is one client span over the whole stream, with its chunks; the TS child's server span continues it until the generator is done", async () => {
    const lines: string[] = [];
    const w = workers.spawn(TRACED, "node", { name: "root/traced", env: { MF_TRACE_SDK: "1" }, onOutput: (_stream, line) => lines.push(line) });
    await w.start();
    exporter.reset();
    const values = (await drainAll(w.stream("tracedCount", [5]))) as { i: number; traceparent: string | null }[];
    const spans = clientSpans("tracedCount");
    expect(spans).toHaveLength(1);
    const [span] = spans;
    expect(span!.kind).toBe(SpanKind.CLIENT);
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span!.attributes).toMatchObject({ "rpc.method": "tracedCount", "multifrost.worker.path": "root/traced", "multifrost.stream.chunks": 5 });
    expect(span!.attributes["multifrost.stream.cancelled"]).toBeUndefined();
    const { traceId, spanId } = span!.spanContext();
    // Every step of the generator ran as the call, which carried the client span's context.
    expect(values.map((v) => v.traceparent)).toEqual(Array(5).fill(`00-${traceId}-${spanId}-01`));

    await waitFor(() => lines.some((line) => line.startsWith("SPAN ") && line.includes('"name":"tracedCount"')), 5000, "the child's server span");
    const server = lines.filter((line) => line.startsWith("SPAN ")).map((line) => JSON.parse(line.slice(5)) as ChildSpan & { attributes: Record<string, unknown> }).find((s) => s.name === "tracedCount")!;
    expect(server).toMatchObject({ kind: SpanKind.SERVER, traceId, parentSpanId: spanId, status: { code: SpanStatusCode.UNSET } });
    expect(server.attributes["multifrost.stream.chunks"]).toBe(5);
  });

  it("a stream its consumer breaks is not an error (both spans marked cancelled); a failed or timed-out stream is ERROR", async () => {
    const lines: string[] = [];
    const w = workers.spawn(TRACED, "node", { name: "root/traced", env: { MF_TRACE_SDK: "1" }, onOutput: (_stream, line) => lines.push(line) });
    await w.start();
    exporter.reset();
    let taken = 0;
    for await (const _ of w.stream("ticks")) if (++taken === 10) break;
    const [broken] = clientSpans("ticks");
    expect(broken!.status.code).toBe(SpanStatusCode.UNSET);
    expect(broken!.attributes["multifrost.stream.cancelled"]).toBe(true);
    expect(broken!.attributes["multifrost.stream.chunks"]).toBeGreaterThanOrEqual(10);
    await waitFor(() => lines.some((line) => line.includes('"name":"ticks"')), 5000, "the child's server span for ticks");
    const server = JSON.parse(lines.find((line) => line.includes('"name":"ticks"'))!.slice(5)) as ChildSpan & { attributes: Record<string, unknown> };
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.attributes["multifrost.stream.cancelled"]).toBe(true);

    await rejectionOf(drainAll(w.stream("failStream", [2])));
    const [failed] = clientSpans("failStream");
    expect(failed!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringContaining("stream broke") });
    expect(failed!.attributes).toMatchObject({ "error.type": "RemoteCallError", "multifrost.stream.chunks": 2 });
    await waitFor(() => lines.some((line) => line.includes('"name":"failStream"')), 5000, "the child's server span for failStream");
    expect((JSON.parse(lines.find((line) => line.includes('"name":"failStream"'))!.slice(5)) as ChildSpan).status.code).toBe(SpanStatusCode.ERROR);

    exporter.reset();
    await rejectionOf(drainAll(w.stream("ticks", [], { totalTimeout: 100 })));
    const [timedOut] = clientSpans("ticks");
    expect(timedOut!.status.code).toBe(SpanStatusCode.ERROR);
    expect(timedOut!.attributes).toMatchObject({ "error.type": "CallTimeoutError", "multifrost.stream.cancelled": true });
  });

  it("a Python library worker receives the traceparent in self.call", async () => {
    const w = workers.spawn(PY_WORKER, PYTHON, { name: "pylib", env: { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":") } });
    await w.start();
    exporter.reset();
    const seenByChild = (await w.call.context()) as { id: string; function: string; traceparent: string | null };
    const [span] = clientSpans("context");
    const { traceId, spanId } = span!.spanContext();
    expect(seenByChild).toMatchObject({ function: "context", traceparent: `00-${traceId}-${spanId}-01` });
  });
});
