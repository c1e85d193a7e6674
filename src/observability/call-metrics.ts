import { metrics, type Attributes, type Counter, type Histogram } from "@opentelemetry/api";
import { LatencyHistogram } from "./histogram.js";

/**
 * Cheap, always-on call metrics of one worker connection (plain counters and a fixed-memory
 * histogram, read by `snapshot()` and the health endpoint), recorded through `@opentelemetry/api`
 * too: `rpc.client.call.duration` (seconds) and `multifrost.client.calls` (by outcome), with
 * `rpc.system`, `rpc.method` and `multifrost.worker.path`, when the application has registered an
 * SDK before creating the worker (without one, nothing is built or called per call).
 *
 * A stream is a call: counted under its outcome like one (a `break` is `cancelled`), but not
 * timed — it lasts as long as its consumer wants, which says nothing of the worker's latency;
 * `streams`/`chunks` and `multifrost.client.stream.chunks` (chunks per stream) count its values.
 */

export type CallOutcome = "ok" | "remote_error" | "timeout" | "transport" | "circuit_open" | "unavailable" | "cancelled";

export interface CallCounts {
  ok: number;
  /** The worker answered with an error (RemoteCallError). */
  remoteError: number;
  timeout: number;
  /** Lost with the connection, refused by the socket, or answered with an invalid frame. */
  transport: number;
  /** Refused by an open circuit without being sent. */
  circuitOpen: number;
  /** Refused because too many calls were buffered or pending. */
  unavailable: number;
  /** Aborted by the caller's `signal`, or a stream its consumer stopped (not a failure: the circuit breaker never counts it). */
  cancelled: number;
  /** Streams that ended (each also counted above under its outcome). */
  streams: number;
  /** Values received by those streams. */
  chunks: number;
}

const RPC_SYSTEM = "multifrost";
/** Distinct functions whose attribute sets are kept per worker; beyond it one is built per call. */
const MAX_CACHED_METHODS = 1000;

interface Instruments {
  duration: Histogram;
  calls: Counter;
  streamChunks: Histogram;
}

/** undefined while no SDK is registered: then nothing is built or called per call. */
function instruments(): Instruments | undefined {
  if (metrics.getMeterProvider().constructor.name === "NoopMeterProvider") return undefined;
  const meter = metrics.getMeter("multifrost");
  return {
    duration: meter.createHistogram("rpc.client.call.duration", {
      description: "Duration of calls to workers, from the call to its reply",
      unit: "s",
    }),
    calls: meter.createCounter("multifrost.client.calls", { description: "Calls to workers, by outcome" }),
    streamChunks: meter.createHistogram("multifrost.client.stream.chunks", {
      description: "Values received per stream, recorded when the stream ends",
      unit: "{chunk}",
      advice: { explicitBucketBoundaries: [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000] },
    }),
  };
}

export class CallMetrics {
  readonly counts: CallCounts = { ok: 0, remoteError: 0, timeout: 0, transport: 0, circuitOpen: 0, unavailable: 0, cancelled: 0, streams: 0, chunks: 0 };
  readonly latency = new LatencyHistogram();
  readonly #path: string;
  readonly #otel = instruments();
  /** Per function: its attributes, and with each outcome (built once, not per call). */
  readonly #attributes = new Map<string, Map<string, Attributes>>();

  constructor(path: string) {
    this.#path = path;
  }

  /**
   * A reply came (`response`, or `error` when `remote`); `startedAt` is the call's
   * performance.now(), undefined for a stream (not timed).
   */
  answered(functionName: string, startedAt: number | undefined, remote: boolean): void {
    const ms = startedAt === undefined ? undefined : performance.now() - startedAt;
    if (ms !== undefined) this.latency.record(ms);
    if (remote) this.counts.remoteError++;
    else this.counts.ok++;
    const otel = this.#otel;
    if (otel === undefined) return;
    if (ms !== undefined) otel.duration.record(ms / 1000, this.#attributesOf(functionName, ""));
    otel.calls.add(1, this.#attributesOf(functionName, remote ? "remote_error" : "ok"));
  }

  /** A stream ended, whatever its outcome (counted as its call's), after `chunks` values. */
  streamed(functionName: string, chunks: number): void {
    this.counts.streams++;
    this.counts.chunks += chunks;
    this.#otel?.streamChunks.record(chunks, this.#attributesOf(functionName, ""));
  }

  /** A call that ended without a reply. */
  failed(functionName: string, outcome: Exclude<CallOutcome, "ok" | "remote_error">, count = 1): void {
    switch (outcome) {
      case "timeout":
        this.counts.timeout += count;
        break;
      case "transport":
        this.counts.transport += count;
        break;
      case "circuit_open":
        this.counts.circuitOpen += count;
        break;
      case "unavailable":
        this.counts.unavailable += count;
        break;
      case "cancelled":
        this.counts.cancelled += count;
        break;
    }
    this.#otel?.calls.add(count, this.#attributesOf(functionName, outcome));
  }

  /** Whether this records anything (see `DisabledCallMetrics`). */
  get enabled(): boolean {
    return true;
  }

  /** The attributes of `functionName` calls, with `outcome` ("" for none). */
  #attributesOf(functionName: string, outcome: string): Attributes {
    let byOutcome = this.#attributes.get(functionName);
    if (byOutcome === undefined) {
      byOutcome = new Map();
      if (this.#attributes.size < MAX_CACHED_METHODS) this.#attributes.set(functionName, byOutcome);
    }
    let attributes = byOutcome.get(outcome);
    if (attributes === undefined) {
      attributes = { "rpc.system": RPC_SYSTEM, "rpc.method": functionName, "multifrost.worker.path": this.#path };
      if (outcome !== "") attributes["multifrost.outcome"] = outcome;
      byOutcome.set(outcome, attributes);
    }
    return attributes;
  }
}

/** `metrics: false`: nothing is counted or recorded (snapshots then show zeros). */
export class DisabledCallMetrics extends CallMetrics {
  override answered(): void {}
  override failed(): void {}
  override streamed(): void {}
  override get enabled(): boolean {
    return false;
  }
}
