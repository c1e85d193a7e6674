import { LogEvent, LogLevel, type LogFields, type Logger } from "./logger.js";

/**
 * JS v4's `StructuredLogger` API (handler, level, `info(event, message, options)`, the convenience
 * methods, `defaultJsonHandler`/`defaultPrettyHandler`), kept for v4 code. It is also a `Logger`:
 * given as the `logger` option, our lifecycle events reach its handler as v4 `LogEntry`s (the
 * fields other than event/worker/service in `metadata`).
 */

export interface LogEntry {
  event: string;
  level: string;
  message: string;
  /** ms since the epoch */
  timestamp: number;
  correlationId?: string | undefined;
  requestId?: string | undefined;
  parentRequestId?: string | undefined;
  workerId?: string | undefined;
  serviceId?: string | undefined;
  func?: string | undefined;
  namespace?: string | undefined;
  durationMs?: number | undefined;
  success?: boolean | undefined;
  error?: string | undefined;
  errorType?: string | undefined;
  metrics?: Record<string, unknown> | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export type LogHandler = (entry: LogEntry) => void;

/** v4's per-entry options of `log()` and the level methods. */
export type LogOptions = Partial<Pick<LogEntry, "correlationId" | "requestId" | "func" | "namespace" | "durationMs" | "success" | "error" | "errorType" | "metadata">> & {
  level?: LogLevel;
};

const ORDER: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

export class StructuredLogger implements Logger {
  #handler: LogHandler | undefined;
  #level: LogLevel;
  #workerId: string | undefined;
  #serviceId: string | undefined;

  constructor(options?: { handler?: LogHandler; level?: LogLevel; workerId?: string; serviceId?: string }) {
    this.#handler = options?.handler;
    this.#level = options?.level ?? LogLevel.INFO;
    this.#workerId = options?.workerId;
    this.#serviceId = options?.serviceId;
  }

  setHandler(handler: LogHandler): void {
    this.#handler = handler;
  }

  setContext(options?: { workerId?: string; serviceId?: string }): void {
    if (options?.workerId !== undefined) this.#workerId = options.workerId;
    if (options?.serviceId !== undefined) this.#serviceId = options.serviceId;
  }

  log(event: LogEvent | string, message: string, options?: LogOptions): void {
    const level = options?.level ?? LogLevel.INFO;
    if (!this.#handler || ORDER[level] < ORDER[this.#level]) return;
    const { level: _level, ...rest } = options ?? {};
    this.#emit({ event, level, message, timestamp: Date.now(), workerId: this.#workerId, serviceId: this.#serviceId, ...rest });
  }

  debug(event: LogEvent | string, message: string, options?: LogOptions): void;
  debug(fields: LogFields, message?: string): void;
  debug(first: string | LogFields, message?: string, options?: LogOptions): void {
    this.#either(LogLevel.DEBUG, first, message, options);
  }

  info(event: LogEvent | string, message: string, options?: LogOptions): void;
  info(fields: LogFields, message?: string): void;
  info(first: string | LogFields, message?: string, options?: LogOptions): void {
    this.#either(LogLevel.INFO, first, message, options);
  }

  warn(event: LogEvent | string, message: string, options?: LogOptions): void;
  warn(fields: LogFields, message?: string): void;
  warn(first: string | LogFields, message?: string, options?: LogOptions): void {
    this.#either(LogLevel.WARN, first, message, options);
  }

  error(event: LogEvent | string, message: string, options?: LogOptions): void;
  error(fields: LogFields, message?: string): void;
  error(first: string | LogFields, message?: string, options?: LogOptions): void {
    this.#either(LogLevel.ERROR, first, message, options);
  }

  requestStart(options: { requestId: string; func: string; namespace?: string; correlationId?: string; metadata?: Record<string, unknown> }): void {
    this.debug(LogEvent.REQUEST_START, `Calling ${options.func}`, { ...options, namespace: options.namespace ?? "default" });
  }

  requestEnd(options: { requestId: string; func: string; durationMs: number; success?: boolean; error?: string; correlationId?: string }): void {
    const ok = options.success !== false;
    this.log(ok ? LogEvent.REQUEST_END : LogEvent.REQUEST_ERROR, ok ? `Completed ${options.func}` : `Failed ${options.func}`, {
      ...options,
      level: ok ? LogLevel.INFO : LogLevel.WARN,
      durationMs: Math.round(options.durationMs * 100) / 100,
      success: options.success ?? true,
    });
  }

  circuitOpen(failures: number): void {
    this.warn(LogEvent.CIRCUIT_OPEN, `Circuit breaker opened after ${failures} failures`);
  }

  circuitClose(): void {
    this.info(LogEvent.CIRCUIT_CLOSE, "Circuit breaker closed (recovered)");
  }

  workerStart(mode = "spawn"): void {
    this.info(LogEvent.WORKER_START, `Worker started in ${mode} mode`);
  }

  workerStop(reason = "shutdown"): void {
    this.info(LogEvent.WORKER_STOP, `Worker stopped: ${reason}`);
  }

  processExit(exitCode: number): void {
    this.log(LogEvent.PROCESS_EXIT, `Child process exited with code ${exitCode}`, { level: exitCode === 0 ? LogLevel.INFO : LogLevel.WARN, metadata: { exitCode } });
  }

  heartbeatSent(): void {
    this.debug(LogEvent.HEARTBEAT_SENT, "Heartbeat sent");
  }

  heartbeatReceived(rttMs: number): void {
    this.debug(LogEvent.HEARTBEAT_RECEIVED, `Heartbeat received (RTT: ${rttMs.toFixed(1)}ms)`, { durationMs: rttMs });
  }

  heartbeatMissed(consecutive: number, maxAllowed: number): void {
    this.warn(LogEvent.HEARTBEAT_MISSED, `Heartbeat missed (${consecutive}/${maxAllowed})`, { metadata: { consecutiveMisses: consecutive, maxAllowed } });
  }

  heartbeatTimeout(misses: number): void {
    this.error(LogEvent.HEARTBEAT_TIMEOUT, `Heartbeat timeout after ${misses} consecutive misses`, { metadata: { totalMisses: misses } });
  }

  #either(level: LogLevel, first: string | LogFields, message: string | undefined, options: LogOptions | undefined): void {
    if (typeof first === "string") {
      this.log(first, message ?? "", { ...options, level });
      return;
    }
    // A pino-style call from the library: (fields, msg).
    if (!this.#handler || ORDER[level] < ORDER[this.#level]) return;
    const { event, worker, service, ...metadata } = first;
    const reason = typeof metadata.reason === "string" && ORDER[level] >= ORDER.warn ? metadata.reason : undefined;
    this.#emit({
      event: typeof event === "string" ? event : "log",
      level,
      message: message ?? "",
      timestamp: Date.now(),
      workerId: typeof worker === "string" ? worker : this.#workerId,
      serviceId: typeof service === "string" ? service : this.#serviceId,
      error: reason,
      metadata,
    });
  }

  #emit(entry: LogEntry): void {
    try {
      this.#handler?.(entry);
    } catch (error) {
      console.error(`Log handler error: ${String(error)}`);
    }
  }
}

/** v4: prints each entry as a JSON line. */
export function defaultJsonHandler(entry: LogEntry): void {
  console.log(JSON.stringify(entry));
}

/** v4: prints `[HH:MM:SS] [LEVEL] event message req=… fn=… 1.2ms error=…`. */
export function defaultPrettyHandler(entry: LogEntry): void {
  const time = new Date(entry.timestamp).toLocaleTimeString("en-US", { hour12: false });
  const parts = [`[${time}] [${entry.level.toUpperCase().padEnd(5)}]`, entry.event, entry.message];
  if (entry.requestId) parts.push(`req=${entry.requestId.slice(0, 8)}`);
  if (entry.func) parts.push(`fn=${entry.func}`);
  if (entry.durationMs !== undefined) parts.push(`${entry.durationMs.toFixed(1)}ms`);
  if (entry.error) parts.push(`error=${entry.error}`);
  console.log(parts.join(" "));
}
