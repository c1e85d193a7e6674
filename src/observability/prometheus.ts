import type { WorkerSnapshot } from "../parent/worker-snapshot.js";
import { HISTOGRAM_BOUNDS_MS } from "./histogram.js";

/**
 * The Prometheus text exposition (format 0.0.4) of worker snapshots: HELP and TYPE lines, label
 * values escaped (backslash, double quote, newline), histograms as cumulative `_bucket{le}` series
 * with `_sum` and `_count`. Written here rather than with prom-client, which records observations
 * itself and cannot expose a histogram kept elsewhere (our fixed-memory one) without its internals.
 */

export interface LatencySource {
  /** Cumulative counts per upper bound (ms), the last bound +Infinity. */
  cumulative(): Array<{ leMs: number; count: number }>;
  readonly sumMs: number;
  readonly count: number;
}

export interface WorkerMetrics {
  snapshot: WorkerSnapshot;
  latency: LatencySource;
}

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export { CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE };

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  return `{${Object.entries(pairs)
    .map(([key, value]) => `${key}="${escapeLabel(value)}"`)
    .join(",")}}`;
}

function number(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

const LIVE = new Set(["connected", "degraded", "circuit-open", "half-open"]);

export function prometheusText(workers: readonly WorkerMetrics[]): string {
  const out: string[] = [];
  const family = (name: string, type: "gauge" | "counter" | "histogram", help: string, lines: () => void) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    lines();
  };
  family("multifrost_worker_up", "gauge", "1 when the worker is up (connected, degraded or behind its circuit breaker), else 0.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_worker_up${labels({ path: snapshot.path, state: snapshot.state })} ${LIVE.has(snapshot.state) ? 1 : 0}`);
  });
  family("multifrost_worker_restarts_total", "counter", "Restarts (or reconnections) over the worker's life.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_worker_restarts_total${labels({ path: snapshot.path })} ${snapshot.restarts}`);
  });
  family("multifrost_calls_total", "counter", "Calls to the worker, by outcome.", () => {
    for (const { snapshot } of workers) {
      const c = snapshot.calls;
      const outcomes: Record<string, number> = {
        ok: c.ok,
        remote_error: c.remoteErrors,
        timeout: c.timedOut,
        transport: c.transport,
        circuit_open: c.circuitOpen,
        unavailable: c.unavailable,
        cancelled: c.cancelled,
      };
      for (const [outcome, value] of Object.entries(outcomes)) out.push(`multifrost_calls_total${labels({ path: snapshot.path, outcome })} ${value}`);
    }
  });
  family("multifrost_streams_total", "counter", "Streams that ended (also counted in multifrost_calls_total under their outcome).", () => {
    for (const { snapshot } of workers) out.push(`multifrost_streams_total${labels({ path: snapshot.path })} ${snapshot.calls.streams}`);
  });
  family("multifrost_stream_chunks_total", "counter", "Values received by streams.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_stream_chunks_total${labels({ path: snapshot.path })} ${snapshot.calls.chunks}`);
  });
  family("multifrost_calls_in_flight", "gauge", "Calls sent and not yet answered.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_calls_in_flight${labels({ path: snapshot.path })} ${snapshot.calls.inFlight}`);
  });
  family("multifrost_calls_buffered", "gauge", "Calls waiting for the worker to be (back) up.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_calls_buffered${labels({ path: snapshot.path })} ${snapshot.calls.buffered}`);
  });
  family("multifrost_call_duration_seconds", "histogram", "Time from a call to its answer (streams are not timed).", () => {
    for (const { snapshot, latency } of workers) {
      for (const { leMs, count } of latency.cumulative()) {
        out.push(`multifrost_call_duration_seconds_bucket${labels({ path: snapshot.path, le: number(leMs / 1000) })} ${count}`);
      }
      out.push(`multifrost_call_duration_seconds_sum${labels({ path: snapshot.path })} ${number(latency.sumMs / 1000)}`);
      out.push(`multifrost_call_duration_seconds_count${labels({ path: snapshot.path })} ${latency.count}`);
    }
  });
  family("multifrost_heartbeat_rtt_seconds", "gauge", "Round-trip time of the last answered heartbeat.", () => {
    for (const { snapshot } of workers) {
      if (snapshot.heartbeatRttMs !== undefined) out.push(`multifrost_heartbeat_rtt_seconds${labels({ path: snapshot.path })} ${number(snapshot.heartbeatRttMs / 1000)}`);
    }
  });
  family("multifrost_circuit_trips_total", "counter", "Times the worker's circuit breaker opened.", () => {
    for (const { snapshot } of workers) out.push(`multifrost_circuit_trips_total${labels({ path: snapshot.path })} ${snapshot.trips}`);
  });
  family("multifrost_worker_cpu_percent", "gauge", "CPU use of the worker's process group (spawned workers).", () => {
    for (const { snapshot } of workers) {
      if (snapshot.cpuPercent !== undefined) out.push(`multifrost_worker_cpu_percent${labels({ path: snapshot.path })} ${number(snapshot.cpuPercent)}`);
    }
  });
  family("multifrost_worker_resident_memory_bytes", "gauge", "Resident memory of the worker's process group (spawned workers).", () => {
    for (const { snapshot } of workers) {
      if (snapshot.rssBytes !== undefined) out.push(`multifrost_worker_resident_memory_bytes${labels({ path: snapshot.path })} ${snapshot.rssBytes}`);
    }
  });
  return `${out.join("\n")}\n`;
}

export { HISTOGRAM_BOUNDS_MS };
