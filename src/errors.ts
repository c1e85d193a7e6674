/**
 * Every error Multifrost raises. This module imports nothing, so every layer may use it.
 * Each class has a stable `name` and `code` so callers can branch without `instanceof`
 * across package copies.
 */

export type MultifrostErrorCode =
  | "ERR_REMOTE_CALL"
  | "ERR_CALL_TIMEOUT"
  | "ERR_WORKER_EXITED"
  | "ERR_WORKER_NOT_RUNNING"
  | "ERR_WORKER_START"
  | "ERR_ENCODE"
  | "ERR_PROTOCOL"
  | "ERR_INVALID_ARGUMENT"
  | "ERR_SEND_FAILED"
  | "ERR_SERVICE_NOT_FOUND"
  | "ERR_SERVICE_RUNNING"
  | "ERR_REGISTRY"
  | "ERR_CIRCUIT_OPEN"
  | "ERR_WORKER_UNAVAILABLE"
  | "ERR_SUPERVISOR";

/** The first line of an error's message (reasons in state events stay one line; stacks and stderr tails are left out). */
export function errorSummary(error: unknown): string {
  return error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
}

export class MultifrostError extends Error {
  readonly code: MultifrostErrorCode;
  constructor(code: MultifrostErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The worker's function threw (or the child refused the call): carries the remote error's type, message and stack. */
export class RemoteCallError extends MultifrostError {
  /** The remote error type, e.g. `"ValueError"` or `"TypeError"` (`"Error"` when the peer sent none). */
  readonly remoteType: string;
  /** The remote message without the type prefix. */
  readonly remoteMessage: string;
  /** The remote stack or Python traceback, when the peer sent one. */
  readonly remoteStack: string | undefined;
  /** The function that was called. */
  readonly functionName: string | undefined;
  constructor(remoteType: string, remoteMessage: string, remoteStack?: string, functionName?: string) {
    super("ERR_REMOTE_CALL", `${remoteType}: ${remoteMessage}`);
    this.remoteType = remoteType;
    this.remoteMessage = remoteMessage;
    this.remoteStack = remoteStack;
    this.functionName = functionName;
  }
}

/** The call got no reply within its timeout. */
export class CallTimeoutError extends MultifrostError {
  readonly functionName: string;
  readonly timeoutMs: number;
  constructor(functionName: string, timeoutMs: number, hint?: string) {
    super("ERR_CALL_TIMEOUT", `Function '${functionName}' timed out after ${timeoutMs}ms${hint ? ` (${hint})` : ""}`);
    this.functionName = functionName;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The worker was lost while the call was in flight, so it may or may not have run: the process
 * exited, its connection dropped, it was found hung, or it was restarted. Every call cut off by
 * a restart gets this error (idempotent calls are sent again instead).
 */
export class WorkerExitedError extends MultifrostError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The last lines the child wrote to stderr, oldest first. */
  readonly stderrTail: readonly string[];
  /** What happened, e.g. "killed by SIGKILL", "disconnected", "unresponsive: 3 heartbeats missed". */
  readonly reason: string;
  constructor(workerName: string, exitCode: number | null, signal: string | null, stderrTail: readonly string[] = [], lostBecause?: string) {
    const how = lostBecause !== undefined ? `was lost (${lostBecause})` : signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length ? `\n--- last stderr lines ---\n${stderrTail.join("\n")}` : "";
    super("ERR_WORKER_EXITED", `Worker '${workerName}' ${how}${tail}`);
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
    this.reason = lostBecause ?? (signal ? `killed by ${signal}` : `exit ${exitCode}`);
  }
}

/** A call was made on a worker that was never started, or is stopping/stopped. */
export class WorkerNotRunningError extends MultifrostError {
  constructor(workerName: string, state: string) {
    super("ERR_WORKER_NOT_RUNNING", `Worker '${workerName}' is not running (state: ${state})`);
  }
}

/** `start()` failed: the executable is missing, the child exited early, or it never answered. */
export class WorkerStartError extends MultifrostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_WORKER_START", message, options);
  }
}

/** A value cannot be sent over the v4 wire (checked before anything is sent). */
export class EncodeError extends MultifrostError {
  /** Where in the value the problem is, e.g. `args[0].user` or `result`. */
  readonly path: string;
  constructor(path: string, problem: string) {
    super("ERR_ENCODE", `Cannot encode ${path}: ${problem}`);
    this.path = path;
  }
}

/** Bytes from the network that are not a valid v4 message. */
export class ProtocolError extends MultifrostError {
  constructor(message: string) {
    super("ERR_PROTOCOL", message);
  }
}

/** A bad argument to a Multifrost API (not a remote failure). */
export class InvalidArgumentError extends MultifrostError {
  constructor(message: string) {
    super("ERR_INVALID_ARGUMENT", message);
  }
}

/** The socket refused to send the message (peer unreachable, socket closed). */
export class SendFailedError extends MultifrostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_SEND_FAILED", message, options);
  }
}

/** No live entry for the service appeared in the registry within the timeout. */
export class ServiceNotFoundError extends MultifrostError {
  readonly serviceId: string;
  readonly timeoutMs: number;
  constructor(serviceId: string, timeoutMs: number) {
    super("ERR_SERVICE_NOT_FOUND", `Service '${serviceId}' not found within ${timeoutMs}ms`);
    this.serviceId = serviceId;
    this.timeoutMs = timeoutMs;
  }
}

/** The service id is already registered by another live process. */
export class ServiceAlreadyRunningError extends MultifrostError {
  readonly serviceId: string;
  readonly pid: number;
  readonly port: number;
  constructor(serviceId: string, pid: number, port: number) {
    super("ERR_SERVICE_RUNNING", `Service '${serviceId}' already running (PID: ${pid}, port: ${port})`);
    this.serviceId = serviceId;
    this.pid = pid;
    this.port = port;
  }
}

/** The registry could not be read or written, or its lock was not free within its time budget. */
export class RegistryError extends MultifrostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_REGISTRY", message, options);
  }
}

/** The worker's circuit breaker is open: the call failed fast, without being sent. */
export class CircuitOpenError extends MultifrostError {
  /** When the breaker will let a probe call through (ms since the epoch), if known. */
  readonly retryAt: number | undefined;
  constructor(workerName: string, reason: string, retryAt?: number) {
    super("ERR_CIRCUIT_OPEN", `Circuit breaker of worker '${workerName}' is open (${reason}); the call was not sent`);
    this.retryAt = retryAt;
  }
}

/** The worker is restarting and its buffer of waiting calls is full. */
export class WorkerUnavailableError extends MultifrostError {
  constructor(workerName: string, message: string) {
    super("ERR_WORKER_UNAVAILABLE", `Worker '${workerName}' ${message}`);
  }
}

/** A supervisor gave up (restart intensity exceeded), was given a bad tree, or has no such child. */
export class SupervisorError extends MultifrostError {
  /** The supervisor's path in the tree, e.g. "root/pipeline". */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super("ERR_SUPERVISOR", `Supervisor '${path}': ${message}`, options);
    this.path = path;
  }
}
