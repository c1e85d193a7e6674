import type { ProcessExit } from "../actors/process-actor.js";
import { LIVE_STATES as LIVE, type ConnectionState } from "../machines/connection.js";
import { LogEvent, type LogFields, type LogLevel, type LogSink } from "./logger.js";

/** What the log lines of one ParentWorker need to know about it. */
export interface LoggedWorker {
  readonly name: string;
  readonly mode: "spawn" | "connect";
  readonly pid: number | undefined;
  readonly restartCount: number;
}

const OPENING: ReadonlySet<ConnectionState> = new Set(["spawning", "connecting"]);

/**
 * A ParentWorker's lifecycle as log lines: its connection's state changes and its process's exits
 * (both rare; calls never pass here).
 */
export class WorkerLog {
  readonly #sink: LogSink;
  readonly #worker: LoggedWorker;

  constructor(sink: LogSink, worker: LoggedWorker) {
    this.#sink = sink;
    this.#worker = worker;
  }

  state(change: { from: ConnectionState; to: ConnectionState; reason: string; ordered?: boolean }): void {
    const { from, to, reason } = change;
    const worker = this.#worker;
    const fields = { worker: worker.name, pid: worker.pid, reason, from, to };
    const log = (level: LogLevel, event: LogEvent, msg: string, extra?: LogFields) =>
      this.#sink.log(level, { ...fields, ...extra, event }, `${worker.name}: ${msg}`);

    if (OPENING.has(to)) {
      // The pid is not known yet: the spawn transport logs process_spawn with it.
      if (worker.mode === "connect") log("info", LogEvent.SOCKET_CONNECT, "connecting", { attempt: worker.restartCount });
      else log("debug", LogEvent.WORKER_START, "starting", { attempt: worker.restartCount });
    } else if (OPENING.has(from) && LIVE.has(to)) {
      log("info", LogEvent.WORKER_READY, worker.restartCount > 0 ? "ready again" : "ready", { restarts: worker.restartCount });
    } else if (OPENING.has(from)) {
      log(to === "stopped" ? "info" : "warn", LogEvent.WORKER_START_FAILED, `start failed (${reason})`);
    } else if (LIVE.has(from) && to === "restarting") {
      if (change.ordered) log("info", LogEvent.WORKER_RESTART, `restart ordered (${reason})`, { ordered: true });
      else log("warn", LogEvent.WORKER_RESTART, `went down, restarting (${reason})`, { restarts: worker.restartCount });
    } else if (to === "circuit-open") {
      log("warn", LogEvent.CIRCUIT_OPEN, `circuit breaker opened (${reason})`);
    } else if (to === "half-open") {
      log("info", LogEvent.CIRCUIT_HALF_OPEN, "circuit breaker half-open: one probe call");
    } else if (from === "half-open" && LIVE.has(to)) {
      log("info", LogEvent.CIRCUIT_CLOSE, "circuit breaker closed");
    } else if (to === "degraded" && reason.startsWith("heartbeat missed")) {
      log("warn", LogEvent.HEARTBEAT_MISSED, reason);
    } else if (to === "failed") {
      log("error", LogEvent.WORKER_FAILED, `failed (${reason})`);
    } else if (to === "stopped") {
      log("info", LogEvent.WORKER_STOP, "stopped");
    } else {
      log("debug", LogEvent.WORKER_STATE, `${from} → ${to} (${reason})`);
    }
  }
}

/** A spawned worker's process started (`pid`) or exited. */
export function logSpawn(sink: LogSink, worker: string, pid: number | undefined, attempt: number): void {
  sink.log("info", { event: LogEvent.PROCESS_SPAWN, worker, pid, attempt }, `${worker}: spawned process ${String(pid)}`);
}

export function logExit(sink: LogSink, worker: string, pid: number | undefined, exit: ProcessExit): void {
  const how = exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${String(exit.code)}`;
  sink.log(
    exit.code === 0 ? "info" : "warn",
    { event: LogEvent.PROCESS_EXIT, worker, pid, reason: how, code: exit.code, signal: exit.signal },
    `${worker}: process ${String(pid)} ${how}`,
  );
}
