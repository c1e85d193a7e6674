import { metrics } from "@opentelemetry/api";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { supervise, worker, type SupervisionTree } from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const SUPERVISED = fixture("supervised-worker.mjs");
const MATH = fixture("math-worker.mjs");
const workers = workerTracker();
const trees: SupervisionTree[] = [];
const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });

beforeAll(() => {
  // Before any worker exists: meters taken earlier stay no-ops.
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
});

afterEach(async () => {
  await Promise.all(trees.splice(0).map((tree) => tree.stop()));
  await workers.stopAll();
});

afterAll(async () => {
  await reader.shutdown();
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

describe("metrics and snapshots", () => {
  it("snapshot() counts calls by outcome and keeps their latency", async () => {
    const w = workers.spawn(SUPERVISED, "node", { name: "root/w" });
    await w.start();
    for (let i = 0; i < 25; i++) await w.call.add(i, 1);
    await rejectionOf(w.call.fail("boom"));
    await rejectionOf(w.call.withOptions({ timeout: 100 }).sleep(1000));
    const snapshot = w.snapshot();
    expect(snapshot).toMatchObject({ kind: "worker", path: "root/w", state: expect.stringMatching(/connected|degraded/), restarts: 0 });
    expect(snapshot.calls).toMatchObject({ ok: 25, remoteErrors: 1, timedOut: 1, failed: 2 });
    expect(snapshot.latencyMs.count).toBe(26);
    expect(snapshot.latencyMs.p50).toBeGreaterThan(0);
    expect(snapshot.latencyMs.p99).toBeGreaterThanOrEqual(snapshot.latencyMs.p50!);
  });

  it("a spawned worker's snapshot has the CPU and RSS of its process group, sampled on the heartbeat", async () => {
    const w = workers.spawn(MATH, "node", { heartbeatIntervalMs: 50 });
    await w.start();
    await waitFor(() => w.snapshot().rssBytes !== undefined, 5000, "a usage sample");
    const { cpuPercent, rssBytes } = w.snapshot();
    expect(rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(cpuPercent).toBeGreaterThanOrEqual(0);
  });

  it("OpenTelemetry: N calls are N in rpc.client.call.duration, with rpc.method and the worker path", async () => {
    const w = workers.spawn(MATH, "node", { name: "otel-worker" });
    await w.start();
    for (let i = 0; i < 40; i++) await w.call.add(1, 2);
    await reader.forceFlush();
    const all = exporter.getMetrics().flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics));
    const duration = all.filter((metric) => metric.descriptor.name === "rpc.client.call.duration").at(-1)!;
    expect(duration.descriptor.unit).toBe("s");
    const point = duration.dataPoints.find((p) => p.attributes["multifrost.worker.path"] === "otel-worker" && p.attributes["rpc.method"] === "add")!;
    expect(point.attributes["rpc.system"]).toBe("multifrost");
    expect((point.value as { count: number }).count).toBe(40);
  });

  it("OpenTelemetry: a stream is one multifrost.client.calls under its outcome, its chunks in multifrost.client.stream.chunks, never in rpc.client.call.duration", async () => {
    const w = workers.spawn(fixture("stream-worker.mjs"), "node", { name: "otel-streams" });
    await w.start();
    for await (const _ of w.stream("count", [50])) {
      /* all of them */
    }
    let taken = 0;
    for await (const _ of w.stream("forever")) if (++taken === 5) break;
    await rejectionOf((async () => {
      for await (const _ of w.stream("silent", [], { timeout: 100 })) {
        /* none comes in time */
      }
    })());
    await reader.forceFlush();
    const all = exporter.getMetrics().flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics));
    const ours = (name: string) => all.filter((metric) => metric.descriptor.name === name).at(-1)?.dataPoints.filter((p) => p.attributes["multifrost.worker.path"] === "otel-streams") ?? [];
    const outcome = (method: string) => ours("multifrost.client.calls").filter((p) => p.attributes["rpc.method"] === method).map((p) => [p.attributes["multifrost.outcome"], p.value]);
    expect(outcome("count")).toEqual([["ok", 1]]);
    expect(outcome("forever")).toEqual([["cancelled", 1]]);
    expect(outcome("silent")).toEqual([["timeout", 1]]);
    expect(ours("rpc.client.call.duration")).toEqual([]);
    const chunks = ours("multifrost.client.stream.chunks");
    const count = chunks.find((p) => p.attributes["rpc.method"] === "count")!.value as { count: number; sum: number };
    expect(count).toMatchObject({ count: 1, sum: 50 });
    expect((chunks.find((p) => p.attributes["rpc.method"] === "silent")!.value as { sum: number }).sum).toBe(0);
  });

  it("a tree serves /healthz (503 while a worker restarts), /readyz, /tree and Prometheus /metrics that parse", async () => {
    const tree = supervise({ id: "root", children: [worker({ id: "w", spawn: SUPERVISED, backoff: { minMs: 1500, maxMs: 1500, jitter: 0 }, onOutput: () => {} })] });
    trees.push(tree);
    await tree.start();
    const health = await tree.serveHealth({ port: 0 });
    try {
      expect(health.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await tree.get("w").call.add(1, 1);
      const ok = await fetch(`${health.url}/healthz`);
      expect(ok.status).toBe(200);
      expect((await fetch(`${health.url}/readyz`)).status).toBe(200);
      const snapshot = (await (await fetch(`${health.url}/tree`)).json()) as { kind: string; children: Array<{ path: string; calls: { ok: number } }> };
      expect(snapshot.kind).toBe("supervisor");
      expect(snapshot.children[0]).toMatchObject({ path: "root/w", calls: { ok: 1 } });

      const text = await (await fetch(`${health.url}/metrics`)).text();
      const families = parsePrometheusTextFormat(text) as Array<{ name: string; type: string; metrics: Array<{ labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }> }>;
      const calls = families.find((family) => family.name === "multifrost_calls_total")!;
      expect(calls.type).toBe("COUNTER");
      expect(calls.metrics.find((m) => m.labels?.path === "root/w" && m.labels?.outcome === "ok")?.value).toBe("1");
      const histogram = families.find((family) => family.name === "multifrost_call_duration_seconds")!;
      expect(histogram.type).toBe("HISTOGRAM");
      expect(histogram.metrics[0]!.buckets!["+Inf"]).toBe("1");
      expect(text).toContain('multifrost_call_duration_seconds_count{path="root/w"} 1\n');
      expect(text).toContain('multifrost_streams_total{path="root/w"} 0\n');
      expect(text).toContain('multifrost_stream_chunks_total{path="root/w"} 0\n');
      for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
        expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? \S+$/);
      }

      process.kill(tree.worker("w").pid!, "SIGKILL");
      await waitFor(() => tree.worker("w").state === "restarting", 5000, "the worker to be down");
      const down = await fetch(`${health.url}/healthz`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { workers: Array<{ path: string; up: boolean; state: string }> };
      expect(body.workers).toEqual([expect.objectContaining({ path: "root/w", up: false, state: "restarting" })]);
      await waitFor(() => tree.worker("w").state === "connected", 10_000, "the worker back");
      expect((await fetch(`${health.url}/healthz`)).status).toBe(200);
      expect(tree.snapshot().children[0]).toMatchObject({ kind: "worker", restarts: 1, lastExit: { reason: "killed by SIGKILL" } });
    } finally {
      await health.close();
    }
  });
});
