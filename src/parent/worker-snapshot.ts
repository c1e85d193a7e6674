import pidusage from "pidusage";
import { groupProcesses } from "../actors/proc.js";
import type { ConnectionState } from "../machines/connection.js";
import type { CallMetrics } from "../observability/call-metrics.js";

/** A worker's state and figures as plain JSON (`worker.snapshot()`, `tree.snapshot()`, `/tree`). */
export interface WorkerSnapshot {
  kind: "worker";
  /** The worker's name: its path in a tree (e.g. "root/math"). */
  path: string;
  state: ConnectionState;
  reason: string;
  pid: number | undefined;
  restarts: number;
  /** Why it last went down (exit, kill, disconnect, hang…), and when (ms since the epoch). */
  lastExit: { reason: string; at: number } | undefined;
  calls: {
    ok: number;
    /** Every call that did not end with a normal answer: the fields below added up. */
    failed: number;
    remoteErrors: number;
    timedOut: number;
    transport: number;
    circuitOpen: number;
    unavailable: number;
    /** Aborted by the caller, or streams the consumer stopped (not counted in `failed`). */
    cancelled: number;
    /** Streams that ended (each also counted above under its outcome; not in `latencyMs`). */
    streams: number;
    /** Values those streams received. */
    chunks: number;
    inFlight: number;
    buffered: number;
  };
  /** From the fixed-memory histogram: each is the upper bound of its bucket (≤ 25% high). */
  latencyMs: { p50: number | undefined; p99: number | undefined; count: number };
  heartbeatRttMs: number | undefined;
  heartbeatMisses: number;
  circuit: "closed" | "open" | "half-open";
  /** Circuit trips over the worker's life. */
  trips: number;
  /** Spawn mode: CPU % and RSS of the worker's process group, sampled on the heartbeat tick. */
  cpuPercent: number | undefined;
  rssBytes: number | undefined;
}

let warmed = false;

/**
 * pidusage runs `getconf CLK_TCK` and `getconf PAGESIZE` once per process, as child processes.
 * Do it when the first spawned worker is created, not in the middle of its life, so that one-off
 * child never shows up among the worker's processes.
 */
function warmPidusage(): void {
  if (warmed) return;
  warmed = true;
  pidusage(process.pid).catch(() => undefined);
}

/** What the observer reads from its worker. */
export interface ObservedWorker {
  readonly name: string;
  readonly state: ConnectionState;
  readonly stateReason: string;
  readonly pid: number | undefined;
  readonly restartCount: number;
  readonly pendingCalls: number;
  readonly bufferedCalls: number;
  readonly lastHeartbeatRttMs: number | undefined;
  readonly heartbeatMisses: number;
  readonly metrics: CallMetrics;
  readonly spawned: boolean;
}

/**
 * Keeps what a snapshot needs beyond the worker's own fields: trips, the last down, and the
 * group's CPU and memory, sampled with `pidusage` when a heartbeat is answered (no timer of its own).
 */
export class WorkerObserver {
  readonly #worker: ObservedWorker;
  #trips = 0;
  #lastExit: WorkerSnapshot["lastExit"];
  #usage: { cpuPercent: number; rssBytes: number } | undefined;
  #sampling = false;

  constructor(worker: ObservedWorker) {
    this.#worker = worker;
    if (worker.spawned) warmPidusage();
  }

  /** Every state change of the worker. */
  changed(from: ConnectionState, to: ConnectionState, reason: string, at: number): void {
    if (to === "circuit-open") this.#trips++;
    const wasUp = from === "connected" || from === "degraded" || from === "circuit-open" || from === "half-open";
    if (wasUp && (to === "restarting" || to === "failed" || (to === "stopping" && reason !== "stop"))) this.#lastExit = { reason, at };
    if (to === "stopped" || to === "failed" || to === "restarting") this.#usage = undefined;
  }

  /** A heartbeat was answered: sample the group's usage (at most one sample in flight). */
  heartbeat(): void {
    const pid = this.#worker.pid;
    if (!this.#worker.spawned || pid === undefined || this.#sampling) return;
    const pids = groupProcesses(pid)?.filter(({ stat }) => stat.state !== "Z").map((process) => process.pid) ?? [pid];
    if (pids.length === 0) return;
    this.#sampling = true;
    pidusage(pids)
      .then((stats) => {
        let cpuPercent = 0;
        let rssBytes = 0;
        for (const stat of Object.values(stats)) {
          if (stat === undefined || stat === null) continue;
          cpuPercent += stat.cpu;
          rssBytes += stat.memory;
        }
        this.#usage = { cpuPercent, rssBytes };
      })
      .catch(() => undefined) // a process exited meanwhile: the next beat samples again
      .finally(() => (this.#sampling = false));
  }

  snapshot(): WorkerSnapshot {
    const worker = this.#worker;
    const counts = worker.metrics.counts;
    const latency = worker.metrics.latency;
    const state = worker.state;
    return {
      kind: "worker",
      path: worker.name,
      state,
      reason: worker.stateReason,
      pid: worker.pid,
      restarts: worker.restartCount,
      lastExit: this.#lastExit,
      calls: {
        ok: counts.ok,
        failed: counts.remoteError + counts.timeout + counts.transport + counts.circuitOpen + counts.unavailable,
        remoteErrors: counts.remoteError,
        timedOut: counts.timeout,
        transport: counts.transport,
        circuitOpen: counts.circuitOpen,
        unavailable: counts.unavailable,
        cancelled: counts.cancelled,
        streams: counts.streams,
        chunks: counts.chunks,
        inFlight: worker.pendingCalls,
        buffered: worker.bufferedCalls,
      },
      latencyMs: { p50: latency.quantile(0.5), p99: latency.quantile(0.99), count: latency.count },
      heartbeatRttMs: worker.lastHeartbeatRttMs,
      heartbeatMisses: worker.heartbeatMisses,
      circuit: state === "circuit-open" ? "open" : state === "half-open" ? "half-open" : "closed",
      trips: this.#trips,
      cpuPercent: this.#usage?.cpuPercent,
      rssBytes: this.#usage?.rssBytes,
    };
  }
}
