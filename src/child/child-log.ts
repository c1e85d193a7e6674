import { errorSummary } from "../errors.js";
import { createLogSink, LogEvent, RateLimit, type LogLevelOption, type Logger, type LogSink } from "../observability/logger.js";

/** A ChildWorker's lifecycle as log lines (the `logger` option); refusals that can repeat per call are rate-limited. */
export class ChildLog {
  readonly #sink: LogSink;
  readonly #worker: string;
  readonly #busy = new RateLimit(1000);
  readonly #shutdownRefused = new RateLimit(10_000);

  /** undefined when quiet (no logger, or level "silent"). */
  static create(logger: Logger | undefined, level: LogLevelOption | undefined, worker: string): ChildLog | undefined {
    const sink = createLogSink(logger, level);
    return sink && new ChildLog(sink, worker);
  }

  private constructor(sink: LogSink, worker: string) {
    this.#sink = sink;
    this.#worker = worker;
  }

  started(mode: "spawn" | "connect", where: { endpoint?: string; service?: string }): void {
    this.#sink.log("info", { event: LogEvent.WORKER_START, worker: this.#worker, pid: process.pid, mode, ...where }, `${this.#worker}: started (${mode} mode)`);
  }

  stopped(reason: string): void {
    this.#sink.log("info", { event: LogEvent.WORKER_STOP, worker: this.#worker, pid: process.pid, reason }, `${this.#worker}: stopped (${reason})`);
  }

  shutdownRefused(): void {
    const suppressed = this.#shutdownRefused.take();
    if (suppressed === undefined) return;
    const fields = { event: LogEvent.SHUTDOWN_REFUSED, worker: this.#worker, pid: process.pid, reason: "acceptShutdown is off", suppressed };
    this.#sink.log("warn", fields, `${this.#worker}: ignored a 'shutdown' message`);
  }

  busy(running: number, waiting: number): void {
    const suppressed = this.#busy.take();
    if (suppressed === undefined) return;
    const fields = { event: LogEvent.BUSY_REFUSED, worker: this.#worker, pid: process.pid, reason: "maxQueuedCalls reached", running, waiting, suppressed };
    this.#sink.log("warn", fields, `${this.#worker}: refused a call (busy)`);
  }

  registryError(operation: "register" | "unregister", service: string, error: unknown): void {
    const fields = { event: LogEvent.REGISTRY_ERROR, worker: this.#worker, pid: process.pid, service, operation, reason: errorSummary(error) };
    this.#sink.log("error", fields, `${this.#worker}: could not ${operation} '${service}'`);
  }
}
