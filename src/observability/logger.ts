import { InvalidArgumentError } from "../errors.js";

/**
 * Lifecycle logging: a pino-compatible `Logger` given as the `logger` option, a level filter
 * (`logLevel` option, else `MULTIFROST_LOG_LEVEL`, else "info"), and the event names. Nothing is
 * logged without a logger, and nothing on the per-call path.
 */

/** Any object with pino's `(obj, msg)` methods: pino, a pino child, bunyan, or a `StructuredLogger`. */
export interface Logger {
  debug(obj: LogFields, msg?: string): void;
  info(obj: LogFields, msg?: string): void;
  warn(obj: LogFields, msg?: string): void;
  error(obj: LogFields, msg?: string): void;
}

/** The v4 log levels, as values (`LogLevel.INFO`) and as a type. */
export const LogLevel = Object.freeze({ DEBUG: "debug", INFO: "info", WARN: "warn", ERROR: "error" } as const);
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** `logLevel` also takes "silent" (nothing). */
export type LogLevelOption = LogLevel | "silent";

export const LOG_LEVEL_ENV = "MULTIFROST_LOG_LEVEL";

/**
 * Every event name we log: v4's names (`LogEvent.WORKER_RESTART`…, some only v4 logs) and ours.
 * Values are what the `event` field holds.
 */
export const LogEvent = Object.freeze({
  WORKER_START: "worker_start",
  WORKER_STOP: "worker_stop",
  WORKER_RESTART: "worker_restart",
  REQUEST_START: "request_start",
  REQUEST_END: "request_end",
  REQUEST_TIMEOUT: "request_timeout",
  REQUEST_ERROR: "request_error",
  CIRCUIT_OPEN: "circuit_open",
  CIRCUIT_CLOSE: "circuit_close",
  CIRCUIT_HALF_OPEN: "circuit_half_open",
  SOCKET_CONNECT: "socket_connect",
  SOCKET_DISCONNECT: "socket_disconnect",
  SOCKET_RECONNECT: "socket_reconnect",
  PROCESS_SPAWN: "process_spawn",
  PROCESS_EXIT: "process_exit",
  HEARTBEAT_SENT: "heartbeat_sent",
  HEARTBEAT_RECEIVED: "heartbeat_received",
  HEARTBEAT_MISSED: "heartbeat_missed",
  HEARTBEAT_TIMEOUT: "heartbeat_timeout",
  QUEUE_OVERFLOW: "queue_overflow",
  // Not in v4:
  WORKER_READY: "worker_ready",
  WORKER_STATE: "worker_state",
  WORKER_START_FAILED: "worker_start_failed",
  WORKER_FAILED: "worker_failed",
  SUPERVISOR_ESCALATE: "supervisor_escalate",
  REGISTRY_ERROR: "registry_error",
  SHUTDOWN_REFUSED: "shutdown_refused",
  BUSY_REFUSED: "busy_refused",
} as const);
export type LogEvent = (typeof LogEvent)[keyof typeof LogEvent];

/** What each line carries; `event` always, the rest when known. */
export interface LogFields {
  event?: string;
  /** The worker's name: its tree path under a supervisor (e.g. "root/math"). */
  worker?: string;
  /** A supervisor's path. */
  supervisor?: string;
  pid?: number | undefined;
  reason?: string;
  from?: string;
  to?: string;
  [key: string]: unknown;
}

const ORDER: Readonly<Record<LogLevelOption, number>> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

export function isLogLevel(value: unknown): value is LogLevelOption {
  return typeof value === "string" && Object.hasOwn(ORDER, value);
}

export function isLogger(value: unknown): value is Logger {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return ["debug", "info", "warn", "error"].every((method) => typeof record[method] === "function");
}

/** The logger with its level filter applied; what the library logs through. */
export interface LogSink {
  readonly logger: Logger;
  readonly level: LogLevelOption;
  log(level: LogLevel, fields: LogFields & { event: LogEvent }, msg: string): void;
}

/** undefined without a logger (quiet by default) or at level "silent"; throws on a bad logger or level. */
export function createLogSink(logger: Logger | undefined, level?: LogLevelOption): LogSink | undefined {
  if (logger === undefined) return undefined;
  if (!isLogger(logger)) throw new InvalidArgumentError("logger must have debug, info, warn and error methods (pino-compatible)");
  const resolved = resolveLogLevel(level);
  if (resolved === "silent") return undefined;
  const threshold = ORDER[resolved];
  return {
    logger,
    level: resolved,
    log(at, fields, msg) {
      if (ORDER[at] < threshold) return;
      try {
        logger[at](fields, msg);
      } catch {
        // A failing logger must not take the worker down with it.
      }
    },
  };
}

export function resolveLogLevel(level: LogLevelOption | undefined): LogLevelOption {
  if (level !== undefined) {
    if (!isLogLevel(level)) throw new InvalidArgumentError(`logLevel must be "debug", "info", "warn", "error" or "silent", got ${JSON.stringify(level)}`);
    return level;
  }
  const fromEnv = process.env[LOG_LEVEL_ENV]?.trim().toLowerCase();
  return isLogLevel(fromEnv) ? fromEnv : "info";
}

/**
 * Lets one line through per `intervalMs`; the next line that passes says how many were held back
 * (`suppressed`). For events that can repeat per call (busy refusals).
 */
export class RateLimit {
  readonly #intervalMs: number;
  #last = -Infinity;
  #suppressed = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** The number suppressed since the last line, or undefined when this one is suppressed too. */
  take(now = Date.now()): number | undefined {
    if (now - this.#last < this.#intervalMs) {
      this.#suppressed++;
      return undefined;
    }
    this.#last = now;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
