import { metrics, type Attributes, type Counter, type Histogram } from "@opentelemetry/api";
import { LatencyHistogram } from "./histogram.js";

/**
 * Cheap, always-on call metrics of one worker connection (plain counters and a fixed-memory
 * histogram, read by `snapshot()` and the health endpoint), recorded through `@opentelemetry/api`
 * too: `rpc.client.call.duration` (seconds) and `multifrost.client.calls` (by outcome), with
 * `rpc.system`, `rpc.method` and `multifrost.worker.path`, when the application has registered an
 * SDK before creating the worker (without one, nothing is built or called per call).
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
  /** Aborted by the caller's `signal` (not a failure: the circuit breaker never counts it). */
  cancelled: number;
}

const RPC_SYSTEM = "multifrost";
/** Distinct functions whose attribute sets are kept per worker; beyond it one is built per call. */
const MAX_CACHED_METHODS = 1000;

interface Instruments {
  duration: Histogram;
  calls: Counter;
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
  };
}

export class CallMetrics {
  readonly counts: CallCounts = { ok: 0, remoteError: 0, timeout: 0, transport: 0, circuitOpen: 0, unavailable: 0, cancelled: 0 };
  readonly latency = new LatencyHistogram();
  readonly #path: string;
  readonly #otel = instruments();
  /** Per function: its attributes, and with each outcome (built once, not per call). */
  readonly #attributes = new Map<string, Map<string, Attributes>>();

  constructor(path: string) {
    this.#path = path;
  }

  /** A reply came (`response`, or `error` when `remote`); `startedAt` is the call's performance.now(). */
  answered(functionName: string, startedAt: number, remote: boolean): void {
    const ms = performance.now() - startedAt;
    this.latency.record(ms);
    if (remote) this.counts.remoteError++;
    else this.counts.ok++;
    const otel = this.#otel;
    if (otel === undefined) return;
    otel.duration.record(ms / 1000, this.#attributesOf(functionName, ""));
    otel.calls.add(1, this.#attributesOf(functionName, remote ? "remote_error" : "ok"));
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
  override get enabled(): boolean {
    return false;
  }
}
