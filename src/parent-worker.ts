import { EventEmitter } from "node:events";
import { basename } from "node:path";
import { createActor, fromPromise, type Actor, type AnyActorRef, type InspectionEvent, type Observer } from "xstate";
import { resolveBackoff, type BackoffOptions } from "./core/backoff.js";
import { CallTable, type PendingCall } from "./actors/call-table.js";
import { splitCommandLine } from "./actors/command-line.js";
import { FailureWindow, type FailureWindowOptions } from "./core/failure-window.js";
import { StateWaiters } from "./actors/state-waiters.js";
import { ProcessActor, type ProcessExit } from "./actors/process-actor.js";
import { DealerChannel } from "./actors/zmq-channel.js";
import { FileRegistry, type RegistryBackend } from "./registry/index.js";
import { createCallProxy, type CallOptions, type CallProxy, type DynamicFunctions } from "./call-proxy.js";
import {
  CallTimeoutError,
  CircuitOpenError,
  InvalidArgumentError,
  RemoteCallError,
  SendFailedError,
  WorkerExitedError,
  WorkerNotRunningError,
  WorkerStartError,
  WorkerUnavailableError,
} from "./errors.js";
import {
  connectionMachine,
  connectionStateOf,
  LIVE_STATES as LIVE,
  type CloseInput,
  type ConnectionEvent,
  type ConnectionInput,
  type ConnectionState,
  type RestartType,
} from "./machines/connection.js";
import { ParentHandle } from "./parent-handle.js";
import {
  DEFAULT_NAMESPACE,
  ENV_PORT,
  ENV_WORKER_MODE,
  RejectedFrame,
  createCall,
  createHeartbeat,
  createShutdown,
  encodeMessage,
  nextMessageId,
  parseFrame,
  parseRemoteError,
  prepareForWire,
  type RejectReason,
} from "./wire/index.js";

export type OutputStream = "stdout" | "stderr";

/** XState's `inspect` option: an inspection callback or observer (e.g. `@statelyai/inspect`'s `inspector.inspect`). */
export type InspectOption = Observer<InspectionEvent> | ((event: InspectionEvent) => void);

export interface CircuitBreakerOptions extends Partial<FailureWindowOptions> {
  /** How long the circuit stays open after a trip before one probe call is let through, in ms. Default 5000. */
  resetTimeout?: number;
  /** Each trip without a stable period in between multiplies the open time by this. Default 2. */
  resetMultiplier?: number;
  /** Cap on the growing open time, in ms. Default 60 000. */
  maxResetTimeout?: number;
  /** Count the worker's own errors (`RemoteCallError`) as failures too. Default false: only timeouts and transport failures count. */
  countApplicationErrors?: boolean;
}

/** Options shared by spawned and connected workers. */
interface CommonOptions {
  /** Shown in output prefixes, errors and events. Default: the script's file name / the service id. */
  name?: string;
  /** Default per-call timeout in ms. Default 30 000. `Infinity` waits forever. */
  defaultTimeout?: number;
  /** How long `start()` (and each restart) waits for the worker's first heartbeat answer, in ms. Default 10 000. */
  startupTimeout?: number;
  /** Namespace for calls that do not name one. Default "default". */
  namespace?: string;
  /** Sent as `client_name` on every call. */
  clientName?: string;
  /**
   * Receives each line the child prints (its stdout/stderr pipes and forwarded output messages).
   * Replaces the default, which prints `[name STDOUT]: line` to this process's stdout/stderr.
   */
  onOutput?: (stream: OutputStream, line: string, workerName: string) => void;

  /** v4: restart (spawn) or reconnect (connect) when the worker goes down. Default: false for spawn, true for connect. */
  autoRestart?: boolean;
  /** v4: restarts allowed before giving up; the count starts again after `stablePeriod`. Default 5. */
  maxRestartAttempts?: number;
  /** Which downs are restarted: "permanent" (all), "transient" (not a clean exit 0), "temporary" (none). Default "permanent". */
  restart?: RestartType;
  /** Delay before each restart: exponential with jitter. Default `{ minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 }`. */
  backoff?: Partial<BackoffOptions>;
  /** Connected this long without trouble → restart and circuit-trip counts start again. In ms, default 10 000. */
  stablePeriod?: number;
  /** v4: seconds between heartbeats (0 disables). Default 5. */
  heartbeatInterval?: number;
  /** v4: seconds to wait for a heartbeat answer (seconds — v4's JS used them as ms). Default 3. */
  heartbeatTimeout?: number;
  /** v4: consecutive missed heartbeats before the worker counts as unresponsive. Default 3. */
  heartbeatMaxMisses?: number;
  /** Seconds; a heartbeat answered slower than this marks the connection degraded. Default: half the timeout. */
  heartbeatSlowThreshold?: number;
  /** The circuit breaker's settings, or `false` for none. */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** Calls made while the worker is (re)starting wait in a buffer of this size; beyond it they fail. Default 1000. */
  maxBufferedCalls?: number;
  /** XState's inspect option for this worker's connection machine (Stately inspector, JSONL…). */
  inspect?: InspectOption;
  /** Supervisors set this: the connection machine joins their actor system. */
  parentActor?: AnyActorRef;
}

export interface SpawnOptions extends CommonOptions {
  /** Extra arguments after the script path (e.g. `["--worker"]`, which Python v4 parents add). */
  args?: readonly string[];
  /** Extra environment for the child (merged over this process's environment). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** After the `shutdown` message, how long `stop()` waits before SIGTERM, in ms. Default 2000. */
  shutdownTimeout?: number;
  /** After SIGTERM, how long `stop()` waits before SIGKILL, in ms. Default 2000. */
  killTimeout?: number;
  /** Interface the parent binds for the child to connect to. Default 127.0.0.1. */
  host?: string;
}

/** Options for `ParentWorker.connect()`. */
export interface ConnectOptions extends CommonOptions {
  /** Where services are registered. Default: a FileRegistry (MULTIFROST_REGISTRY_DIR or ~/.multifrost). */
  registry?: RegistryBackend;
  /** Shorthand for `registry: new FileRegistry({ dir })`. */
  registryDir?: string;
  /** Host the service listens on. Default 127.0.0.1. */
  host?: string;
}

/** What a ParentWorker runs or reaches. */
type WorkerTarget =
  | { kind: "spawn"; scriptPath: string; argv: readonly string[] }
  | { kind: "connect"; serviceId: string; registry: RegistryBackend };

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  reason: string;
  /** `Date.now()` when it happened. */
  at: number;
}

export interface ParentWorkerEvents {
  stdout: [line: string];
  stderr: [line: string];
  exit: [exit: ProcessExit];
  state: [change: StateChange];
}

export interface ParentWorkerStats {
  callsSent: number;
  /** Replies whose id matched no pending call (late after a timeout, or duplicates). */
  unmatchedReplies: number;
  /** Frames dropped as invalid, by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  /** Idempotent calls sent again after the worker came back. */
  retries: number;
}

const DEFAULTS = {
  defaultTimeout: 30_000,
  startupTimeout: 10_000,
  shutdownTimeout: 2_000,
  killTimeout: 2_000,
  maxBufferedCalls: 1000,
  stablePeriod: 10_000,
  circuitResetTimeout: 5_000,
  circuitMaxResetTimeout: 60_000,
};

/** After a dropped connection, when to look the service up again (ms after the previous look). */
const SERVICE_RECHECK_DELAYS_MS = [0, 100, 400, 1000];

/** How a call is handled in the current state; kept as a number so the hot path is one switch. */
const enum Gate {
  Send,
  Buffer,
  CircuitOpen,
  HalfOpen,
  Closed,
}

const GATES: Record<ConnectionState, Gate> = {
  idle: Gate.Closed,
  spawning: Gate.Buffer,
  connecting: Gate.Buffer,
  connected: Gate.Send,
  degraded: Gate.Send,
  "circuit-open": Gate.CircuitOpen,
  "half-open": Gate.HalfOpen,
  restarting: Gate.Buffer,
  stopping: Gate.Closed,
  stopped: Gate.Closed,
  failed: Gate.Closed,
};


/** A call whose bytes wait for the worker to be (back) up. */
interface BufferedCall {
  id: string;
  bytes: Buffer;
}

/** An idempotent call's recipe, kept while it is in flight so it can be re-sent under a new id. */
interface RetryableCall {
  functionName: string;
  args: unknown[];
  namespace: string;
  clientName: string | undefined;
  retriesLeft: number;
}

/**
 * The parent's view of one worker: starts it, calls its functions, watches it (heartbeats,
 * circuit breaker), restarts or reconnects it, stops it. Its lifecycle is an XState connection
 * machine (`state`, the `state` event); the calls themselves never go through the machine.
 */
export class ParentWorker extends EventEmitter<ParentWorkerEvents> {
  readonly name: string;
  /** Spawn mode: the script ("" in connect mode). */
  readonly scriptPath: string;
  /** Spawn mode: the full command line ([] in connect mode). */
  readonly argv: readonly string[];
  /** Connect mode: the service id. */
  readonly serviceId: string | undefined;
  readonly defaultTimeout: number;
  readonly autoRestart: boolean;
  readonly maxRestartAttempts: number;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly heartbeatMaxMisses: number;
  /** `worker.call.<fn>()` — the same proxy a handle offers. */
  readonly call: CallProxy<DynamicFunctions>;

  readonly #options: SpawnOptions & ConnectOptions;
  readonly #target: WorkerTarget;
  readonly #namespace: string;
  readonly #machine: Actor<typeof connectionMachine>;
  readonly #calls: CallTable;
  readonly #stats: ParentWorkerStats = { callsSent: 0, unmatchedReplies: 0, rejected: {}, retries: 0 };
  readonly #window: FailureWindow | undefined;
  readonly #countApplicationErrors: boolean;
  readonly #maxBuffered: number;
  readonly #heartbeatIds = new Set<string>();
  readonly #retryable = new Map<string, RetryableCall>();
  /** Re-registered calls (retried or re-buffered) by id → the timeout their caller gave. */
  readonly #requestedTimeouts = new Map<string, number>();
  readonly #waiters = new StateWaiters<ConnectionState>();
  #buffer: BufferedCall[] = [];
  #state: ConnectionState = "idle";
  #gate: Gate = Gate.Closed;
  #probeId: string | undefined;
  #channel: DealerChannel | undefined;
  #process: ProcessActor | undefined;
  #port: number | undefined;
  #exitError: WorkerExitedError | undefined;
  #startError: Error | undefined;
  #lastHeartbeatRttMs: number | undefined;
  /** Set when this side asked the child to shut down, so its exit counts as normal. */
  #shutdownSent = false;
  #checkingService = false;
  #stopping: Promise<void> | undefined;
  #starting: Promise<void> | undefined;

  private constructor(target: WorkerTarget, options: SpawnOptions & ConnectOptions) {
    super();
    this.#target = target;
    this.scriptPath = target.kind === "spawn" ? target.scriptPath : "";
    this.argv = target.kind === "spawn" ? target.argv : [];
    this.serviceId = target.kind === "connect" ? target.serviceId : undefined;
    this.#options = options;
    this.name = options.name ?? (target.kind === "spawn" ? basename(target.scriptPath) : target.serviceId);
    this.#namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.defaultTimeout = checkTimeout(options.defaultTimeout ?? DEFAULTS.defaultTimeout, "defaultTimeout");
    this.autoRestart = options.autoRestart ?? target.kind === "connect";
    this.maxRestartAttempts = checkCount(options.maxRestartAttempts ?? 5, "maxRestartAttempts");
    this.heartbeatInterval = checkSeconds(options.heartbeatInterval ?? 5, "heartbeatInterval", true);
    this.heartbeatTimeout = checkSeconds(options.heartbeatTimeout ?? 3, "heartbeatTimeout", false);
    this.heartbeatMaxMisses = checkCount(options.heartbeatMaxMisses ?? 3, "heartbeatMaxMisses", 1);
    this.#maxBuffered = checkCount(options.maxBufferedCalls ?? DEFAULTS.maxBufferedCalls, "maxBufferedCalls");
    const breaker = options.circuitBreaker === false ? undefined : (options.circuitBreaker ?? {});
    this.#window = breaker && new FailureWindow(breaker);
    this.#countApplicationErrors = breaker?.countApplicationErrors ?? false;
    this.#calls = new CallTable((call) => this.#timeoutError(call));
    this.call = createCallProxy((fn, args, callOptions) => this.invoke(fn, args, callOptions));

    const input = this.#machineInput(breaker);
    const machine = connectionMachine.provide({
      actors: {
        open: fromPromise<void, { attempt: number }>(({ signal }) => this.#open(signal)),
        ping: fromPromise<number, { timeoutMs: number }>(({ input: ping }) => this.#ping(ping.timeoutMs)),
        close: fromPromise<void, CloseInput>(({ input: close }) => this.#close(close)),
      },
    });
    this.#machine = createActor(machine, {
      input,
      inspect: options.parentActor ? undefined : options.inspect,
      parent: options.parentActor,
    });
    this.#machine.subscribe((snapshot) => {
      const to = connectionStateOf(snapshot);
      if (to !== this.#state) this.#onStateChange(this.#state, to, snapshot.context.reason);
    });
    this.#machine.start();
  }

  /**
   * A worker that runs `executable script` (no shell). `executable` may hold several words
   * (`"npx tsx"`) or be an argv array; `"node"` means this Node binary.
   */
  static spawn(scriptPath: string, executable: string | readonly string[] = "node", options: SpawnOptions = {}): ParentWorker {
    if (typeof scriptPath !== "string" || scriptPath.trim() === "") {
      throw new InvalidArgumentError("spawn() needs a script path");
    }
    const command = typeof executable === "string" ? splitCommandLine(executable) : [...executable];
    if (command.length === 0) throw new InvalidArgumentError("spawn() needs an executable");
    if (command[0] === "node") command[0] = process.execPath;
    const script = splitCommandLine(scriptPath);
    const argv = [...command, ...script, ...(options.args ?? [])];
    return new ParentWorker({ kind: "spawn", scriptPath: script[0] ?? scriptPath, argv }, options);
  }

  /**
   * A worker for a running service (connect mode): waits up to `timeoutMs` for `serviceId` to
   * appear in the registry. `start()` connects and resolves once the service answered a
   * heartbeat; if the service restarts elsewhere the worker finds it again; `stop()` disconnects
   * and never stops the service.
   */
  static async connect(serviceId: string, timeoutMs = 5000, options: ConnectOptions = {}): Promise<ParentWorker> {
    const worker = ParentWorker.forService(serviceId, options);
    await worker.#registry().discover(serviceId, timeoutMs);
    return worker;
  }

  /** Like `connect()`, without waiting for the service to be registered (`start()` waits for it). */
  static forService(serviceId: string, options: ConnectOptions = {}): ParentWorker {
    if (typeof serviceId !== "string" || serviceId.length === 0) {
      throw new InvalidArgumentError("connect() needs a service id");
    }
    const registry = options.registry ?? new FileRegistry({ dir: options.registryDir });
    return new ParentWorker({ kind: "connect", serviceId, registry }, options);
  }

  /** A handle sharing this worker (v4 API). Several handles may share one worker. */
  handle<T extends object = DynamicFunctions>(): ParentHandle<T> {
    return new ParentHandle<T>(this);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Why the connection entered its current state (e.g. "exit 137", "heartbeat missed (1 in a row)"). */
  get stateReason(): string {
    return this.#machine.getSnapshot().context.reason;
  }

  /** The connection machine's actor (to subscribe, or to hand to tooling). */
  get actor(): Actor<typeof connectionMachine> {
    return this.#machine;
  }

  /** The pid of the current (or last) child process (spawn mode). */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Spawn mode: the port the parent bound for the child; connect mode: the service's port. */
  get port(): number | undefined {
    return this.#port;
  }

  /** v4: connected and the circuit closed. */
  get isHealthy(): boolean {
    return this.#state === "connected" || this.#state === "degraded";
  }

  /** v4: true while the circuit breaker refuses calls (open or half-open). */
  get circuitOpen(): boolean {
    return this.#state === "circuit-open" || this.#state === "half-open";
  }

  /** v4: restarts (or reconnects) over the worker's whole life. */
  get restartCount(): number {
    return this.#machine.getSnapshot().context.totalRestarts;
  }

  get lastHeartbeatRttMs(): number | undefined {
    return this.#lastHeartbeatRttMs;
  }

  /** Calls sent (or waiting to be sent) and not yet answered. */
  get pendingCalls(): number {
    return this.#calls.size;
  }

  /** Calls waiting for the worker to come (back) up. */
  get bufferedCalls(): number {
    this.#pruneBuffer();
    return this.#buffer.length;
  }

  /** Drops buffered calls that timed out while waiting. */
  #pruneBuffer(): void {
    this.#buffer = this.#buffer.filter((call) => this.#calls.has(call.id));
  }

  get stats(): Readonly<ParentWorkerStats> {
    return this.#stats;
  }

  /** Starts (or reconnects) and resolves once the worker has answered a heartbeat. */
  start(): Promise<void> {
    const state = this.#state;
    if (LIVE.has(state)) return Promise.resolve();
    if (state === "stopping") {
      return Promise.reject(new WorkerStartError(`Worker '${this.name}' is stopping; await stop() before start()`));
    }
    if (this.#starting) return this.#starting;
    const sending = state === "idle" || state === "stopped" || state === "failed";
    this.#starting = this.#waiters.until((to) => {
      if (LIVE.has(to)) return true;
      if (to === "failed") throw this.#startError ?? this.#notRunningError();
      // Rejected once stopped, not while stopping: stop() callers see both settle together.
      if (to === "stopped") {
        throw new WorkerStartError(`Worker '${this.name}' was stopped before it became ready`);
      }
      return false;
    }, sending ? undefined : { state: this.#state }).finally(() => (this.#starting = undefined));
    if (sending) {
      this.#startError = undefined;
      this.#exitError = undefined;
      this.#send({ type: "START" });
    }
    return this.#starting;
  }

  /**
   * Sends `shutdown`, lets the child finish its calls, then SIGTERM and SIGKILL to its whole
   * process group if it has not exited (a connected service is only disconnected). Calls still
   * pending afterwards are rejected.
   */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    if (this.#stopping) return this.#stopping;
    this.#stopping = this.#waiters.until((to) => to === "stopped", this.#state === "stopping" ? { state: this.#state } : undefined).finally(() => (this.#stopping = undefined));
    this.#send({ type: "STOP" });
    return this.#stopping;
  }

  /** Restarts the worker now (a supervisor's order): graceful stop, then start; `immediate` skips the backoff. */
  restart(reason = "restart requested", immediate = true): Promise<void> {
    if (!LIVE.has(this.#state)) return this.start();
    const restarted = this.#waiters.until((to) => {
      if (to === "connected") return true;
      if (to === "failed" || to === "stopped") throw this.#startError ?? this.#notRunningError();
      return false;
    });
    this.#send({ type: "RESTART", reason, immediate });
    return restarted;
  }

  /** v4 API: `callFunction(name, args, timeoutMs, namespace, clientName)`. */
  callFunction<T = unknown>(
    functionName: string,
    args: unknown[] = [],
    timeout?: number,
    namespace?: string,
    clientName?: string,
  ): Promise<T> {
    return this.#call(functionName, args, timeout, namespace, clientName, undefined) as Promise<T>;
  }

  /** Calls `functionName(...args)` with per-call options (what `handle.call.withOptions(o).fn()` does). */
  invoke<T = unknown>(functionName: string, args: unknown[], options?: CallOptions): Promise<T> {
    return (
      options === undefined
        ? this.#call(functionName, args, undefined, undefined, undefined, undefined)
        : this.#call(functionName, args, options.timeout, options.namespace, options.clientName, options)
    ) as Promise<T>;
  }

  /** Sends a heartbeat and resolves with the round-trip time in ms. */
  async ping(timeoutMs = this.heartbeatTimeout * 1000): Promise<number> {
    // While starting, the socket already queues messages for the child.
    if (this.#gate === Gate.Closed || this.#state === "restarting") throw this.#notRunningError();
    return this.#ping(timeoutMs);
  }

  #call(
    functionName: string,
    args: unknown[],
    timeout: number | undefined,
    namespace: string | undefined,
    clientName: string | undefined,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    const gate = this.#gate;
    if (gate === Gate.Closed) return Promise.reject(this.#notRunningError());
    if (gate === Gate.CircuitOpen || (gate === Gate.HalfOpen && this.#probeId !== undefined)) {
      return Promise.reject(this.#circuitOpenError());
    }
    if (typeof functionName !== "string" || functionName.length === 0) {
      return Promise.reject(new InvalidArgumentError("the function name must be a non-empty string"));
    }
    if (!Array.isArray(args)) return Promise.reject(new InvalidArgumentError("args must be an array"));
    const timeoutMs = timeout ?? this.defaultTimeout;
    if (timeoutMs !== this.defaultTimeout && !isValidTimeout(timeoutMs)) {
      return Promise.reject(new InvalidArgumentError(`timeout must be a positive number of ms or Infinity, got ${String(timeout)}`));
    }
    if (gate === Gate.Buffer && this.#buffer.length >= this.#maxBuffered) {
      this.#pruneBuffer(); // calls that timed out while waiting no longer hold a place
      if (this.#buffer.length >= this.#maxBuffered) {
        return Promise.reject(
          new WorkerUnavailableError(this.name, `is ${this.#state} and ${this.#buffer.length} calls already wait for it (maxBufferedCalls)`),
        );
      }
    }
    const id = nextMessageId();
    const ns = namespace ?? this.#namespace;
    const client = clientName ?? this.#options.clientName;
    let wireArgs: unknown[];
    let bytes: Buffer;
    try {
      wireArgs = prepareForWire(args, "args") as unknown[];
      bytes = encodeMessage(createCall(id, functionName, wireArgs, ns, client));
    } catch (error) {
      return Promise.reject(error);
    }
    const promise = this.#calls.register(id, functionName, timeoutMs, ns);
    if (options?.idempotent) {
      this.#retryable.set(id, { functionName, args: wireArgs, namespace: ns, clientName: client, retriesLeft: checkRetries(options.retries) });
      void promise.then(
        () => this.#retryable.delete(id),
        () => this.#retryable.delete(id),
      );
    }
    if (gate === Gate.Buffer) {
      this.#buffer.push({ id, bytes });
      return promise;
    }
    if (gate === Gate.HalfOpen) this.#sendProbe(id, promise);
    this.#stats.callsSent++;
    this.#channel!.send(bytes, id);
    return promise;
  }

  /** The one call a half-open circuit lets through: its outcome closes or re-opens the circuit. */
  #sendProbe(id: string, promise: Promise<unknown>): void {
    this.#probeId = id;
    const settle = (ok: boolean, reason: string) => {
      if (this.#probeId !== id) return;
      this.#probeId = undefined;
      this.#send(ok ? { type: "PROBE_OK" } : { type: "PROBE_FAILED", reason });
    };
    promise.then(
      () => settle(true, ""),
      (error: unknown) => {
        const counted = this.#countsAsFailure(error);
        settle(!counted, `probe failed: ${errorText(error)}`);
      },
    );
  }

  #countsAsFailure(error: unknown): boolean {
    if (error instanceof RemoteCallError) return this.#countApplicationErrors;
    return error instanceof CallTimeoutError || error instanceof SendFailedError;
  }

  /** A timeout or transport failure: feeds the failure window, which may trip the circuit. */
  #recordFailure(reason: string): void {
    const window = this.#window;
    if (window === undefined || (this.#state !== "connected" && this.#state !== "degraded")) return;
    if (window.recordFailure()) {
      const stats = window.snapshot();
      window.reset();
      this.#send({
        type: "TRIPPED",
        reason: `${reason}; ${stats.failures} of ${stats.requests} calls failed, ${stats.consecutiveFailures} in a row`,
      });
    } else if (this.#state === "connected") {
      this.#send({ type: "CALL_FAILED", reason });
    }
  }

  // ── The actors the connection machine invokes ────────────────────────────────────────────

  /** `open`: spawn (or find and connect) and resolve once the worker answered a heartbeat. */
  async #open(signal: AbortSignal): Promise<void> {
    this.#shutdownSent = false;
    try {
      if (this.#target.kind === "connect") await this.#openConnected(this.#target, signal);
      else await this.#openSpawned(this.#target, signal);
    } catch (error) {
      this.#startError = error instanceof WorkerStartError ? error : new WorkerStartError(errorText(error), { cause: error });
      if (!signal.aborted) await this.#teardown("kill");
      throw this.#startError;
    }
  }

  async #openSpawned(target: Extract<WorkerTarget, { kind: "spawn" }>, signal: AbortSignal): Promise<void> {
    const channel = this.#createChannel();
    try {
      this.#port = await channel.bind(this.#options.host ?? "127.0.0.1");
    } catch (error) {
      throw new WorkerStartError(`Worker '${this.name}': cannot bind a port: ${String(error)}`, { cause: error });
    }
    if (signal.aborted) return;
    this.#listen(channel);
    let spawnError: Error | undefined;
    const child = new ProcessActor(
      {
        argv: target.argv,
        cwd: this.#options.cwd,
        env: {
          ...process.env,
          PYTHONUNBUFFERED: "1",
          ...this.#options.env,
          [ENV_PORT]: String(this.#port),
          [ENV_WORKER_MODE]: "1",
        },
      },
      {
        onStdout: (line) => this.#output("stdout", line),
        onStderr: (line) => this.#output("stderr", line),
        onExit: (exit) => this.#onExit(child, exit),
        onSpawnError: (error) => {
          spawnError = error;
        },
      },
    );
    this.#process = child;
    const startupTimeout = this.#options.startupTimeout ?? DEFAULTS.startupTimeout;
    try {
      const exited = child.whenExited().then((exit) => {
        throw this.#startFailure(spawnError, exit, child);
      });
      await Promise.race([this.#ping(startupTimeout), exited]);
    } catch (error) {
      if (error instanceof WorkerStartError) throw error;
      if (error instanceof WorkerExitedError || spawnError) {
        throw this.#startFailure(spawnError, child.exitInfo ?? { code: null, signal: null }, child);
      }
      throw this.#startTimeoutFailure(error, startupTimeout, child);
    }
  }

  /** Connect mode: look the service up (it may have moved), connect, heartbeat. */
  async #openConnected(target: Extract<WorkerTarget, { kind: "connect" }>, signal: AbortSignal): Promise<void> {
    const startupTimeout = this.#options.startupTimeout ?? DEFAULTS.startupTimeout;
    try {
      const entry = await target.registry.discover(target.serviceId, startupTimeout);
      if (signal.aborted) return;
      this.#port = entry.port;
      const channel = this.#createChannel();
      channel.connect(`tcp://${this.#options.host ?? "127.0.0.1"}:${entry.port}`);
      channel.onDisconnect(() => void this.#checkService(channel));
      this.#listen(channel);
      await this.#ping(startupTimeout);
    } catch (error) {
      if (error instanceof CallTimeoutError) {
        throw new WorkerStartError(
          `Service '${target.serviceId}' (port ${this.#port}) did not answer a heartbeat within ${startupTimeout}ms`,
          { cause: error },
        );
      }
      throw new WorkerStartError(`Cannot connect to service '${target.serviceId}': ${errorText(error)}`, { cause: error });
    }
  }

  /**
   * Connect mode: the TCP connection dropped. If the registry no longer lists the service at
   * this port (it stopped, or restarted elsewhere), the connection is down; otherwise zeromq
   * reconnects by itself and heartbeats judge the rest.
   */
  async #checkService(channel: DealerChannel): Promise<void> {
    if (this.#checkingService || this.#target.kind !== "connect") return;
    this.#checkingService = true;
    const registry = this.#target.registry;
    const serviceId = this.#target.serviceId;
    try {
      // A service that just died may still look alive for a moment (not yet reaped, not yet
      // unregistered): look again a few times before leaving it to the heartbeats.
      for (const delayMs of SERVICE_RECHECK_DELAYS_MS) {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const entry = await registry.discover(serviceId, 0).catch(() => undefined);
        if (channel !== this.#channel || !LIVE.has(this.#state)) return;
        if (entry === undefined || entry.port !== this.#port) {
          const where = entry === undefined ? "is no longer registered" : `moved to port ${entry.port}`;
          this.#failInFlight(new WorkerNotRunningError(this.name, `disconnected: the service ${where}`));
          this.#send({ type: "DOWN", reason: `service ${where}`, normal: false });
          return;
        }
      }
    } finally {
      this.#checkingService = false;
    }
  }

  /** `ping`: one heartbeat, resolving with its round-trip time. */
  async #ping(timeoutMs: number): Promise<number> {
    const channel = this.#channel;
    if (channel === undefined) throw this.#notRunningError();
    const id = nextMessageId();
    const sentAt = performance.now();
    this.#heartbeatIds.add(id);
    try {
      const reply = this.#calls.register(id, "heartbeat", timeoutMs, this.#namespace);
      channel.send(encodeMessage(createHeartbeat(id)), id);
      await reply;
    } finally {
      this.#heartbeatIds.delete(id);
    }
    const rtt = performance.now() - sentAt;
    this.#lastHeartbeatRttMs = rtt;
    return rtt;
  }

  /** `close`: ends the connection (spawn: shutdown → SIGTERM → SIGKILL to the group; "kill": SIGKILL now). */
  #close(close: CloseInput): Promise<void> {
    return this.#teardown(close.mode);
  }

  async #teardown(mode: CloseInput["mode"]): Promise<void> {
    const child = this.#process;
    const channel = this.#channel;
    if (child && !child.exited) {
      if (mode === "kill") {
        child.signal("SIGKILL");
        await child.whenExited();
      } else {
        if (channel) {
          this.#shutdownSent = true;
          channel.send(encodeMessage(createShutdown(nextMessageId())));
        }
        await child.terminate(this.#options.shutdownTimeout ?? DEFAULTS.shutdownTimeout, this.#options.killTimeout ?? DEFAULTS.killTimeout);
      }
    }
    // A newer connection may have been opened meanwhile (stop raced a restart): leave it alone.
    if (this.#channel === channel) {
      channel?.close();
      this.#channel = undefined;
    }
  }

  // ── State changes ─────────────────────────────────────────────────────────────────────────

  #onStateChange(from: ConnectionState, to: ConnectionState, reason: string): void {
    this.#state = to;
    this.#gate = GATES[to];
    if (LIVE.has(to) && !LIVE.has(from)) {
      this.#exitError = undefined; // it described the previous process
      this.#window?.reset();
      this.#flushBuffer();
    } else if (LIVE.has(from) && to === "restarting") {
      // Whatever was in flight is lost with the old connection (an exit already rejected it).
      this.#failInFlight(this.#exitError ?? new WorkerNotRunningError(this.name, `restarting: ${reason}`));
    } else if (to === "failed" || to === "stopped") {
      this.#buffer = [];
      this.#retryable.clear();
      this.#calls.rejectAll(() => this.#notRunningError());
    }
    if (to === "circuit-open" || to === "half-open") this.#probeId = undefined;
    if (to === "connected" && from === "half-open") this.#window?.reset();
    this.emit("state", { from, to, reason, at: Date.now() });
    this.#waiters.notify(to);
  }

  #flushBuffer(): void {
    const buffered = this.#buffer;
    this.#buffer = [];
    const channel = this.#channel;
    if (channel === undefined) return;
    for (const call of buffered) {
      if (!this.#calls.has(call.id)) continue; // timed out while waiting
      this.#stats.callsSent++;
      channel.send(call.bytes, call.id);
    }
  }

  /**
   * The connection was lost with calls in flight: idempotent ones with retries left wait for the
   * next connection (under a new id, with what is left of their timeout); the rest fail now.
   */
  #failInFlight(error: Error): void {
    // A snapshot: #requeue adds entries, which a live Map iteration would visit (and retry) again.
    // Calls still waiting in the buffer were never sent since their last retry: not retried again.
    const unsent = new Set(this.#buffer.map((call) => call.id));
    for (const [id, recipe] of [...this.#retryable]) {
      if (recipe.retriesLeft <= 0 || unsent.has(id)) continue;
      const call = this.#calls.take(id);
      this.#retryable.delete(id);
      if (call === undefined) continue;
      this.#requeue(call, recipe);
    }
    // Calls waiting in the buffer (requeued ones included) were never sent: only the sent ones fail.
    const waiting = this.#buffer.map((call) => this.#calls.take(call.id)).filter((call) => call !== undefined);
    this.#calls.rejectAll(() => error);
    for (const call of waiting) this.#rebuffer(call);
  }

  #requeue(call: PendingCall, recipe: RetryableCall): void {
    const remaining = call.timeoutMs === Infinity ? Infinity : call.deadline - Date.now();
    if (remaining <= 0) {
      call.reject(new CallTimeoutError(call.functionName, this.#requestedTimeout(call)));
      return;
    }
    const id = nextMessageId();
    const bytes = encodeMessage(createCall(id, recipe.functionName, recipe.args, recipe.namespace, recipe.clientName));
    this.#retryable.set(id, { ...recipe, retriesLeft: recipe.retriesLeft - 1 });
    this.#reregister(call, id, remaining, () => this.#retryable.delete(id));
    this.#stats.retries++;
    this.#buffer.push({ id, bytes });
  }

  /** Puts a never-sent call back in the table (same id) after a rejectAll. */
  #rebuffer(call: PendingCall): void {
    const remaining = call.timeoutMs === Infinity ? Infinity : Math.max(1, call.deadline - Date.now());
    this.#reregister(call, call.id, remaining);
  }

  /**
   * Registers a taken call again under `id` with `remaining` ms; its outcome settles the original
   * caller. The caller's own timeout is remembered so a timeout error still reports it.
   */
  #reregister(call: PendingCall, id: string, remaining: number, onSettled?: () => void): void {
    const requested = this.#requestedTimeout(call);
    this.#requestedTimeouts.delete(call.id);
    this.#requestedTimeouts.set(id, requested);
    const settled = () => {
      this.#requestedTimeouts.delete(id);
      onSettled?.();
    };
    this.#calls.register(id, call.functionName, remaining, call.namespace).then(
      (value) => {
        settled();
        call.resolve(value);
      },
      (error: unknown) => {
        settled();
        call.reject(error);
      },
    );
  }

  /** The timeout the caller asked for (a re-registered call's table entry holds only what was left of it). */
  #requestedTimeout(call: PendingCall): number {
    return this.#requestedTimeouts.get(call.id) ?? call.timeoutMs;
  }

  // ── Wire and process events ───────────────────────────────────────────────────────────────

  #createChannel(): DealerChannel {
    const channel = new DealerChannel((id, error) => {
      if (id === undefined) return;
      if (this.#calls.reject(id, new SendFailedError(`Failed to send to worker '${this.name}': ${String(error)}`, { cause: error }))) {
        if (!this.#heartbeatIds.has(id)) this.#recordFailure("send failed");
      }
    });
    this.#channel = channel;
    return channel;
  }

  /** Starts the channel's receive loop (after bind: zeromq.js blocks a socket while it binds). */
  #listen(channel: DealerChannel): void {
    channel.onPayload(
      (payload) => this.#onPayload(payload),
      (error) => this.#onChannelError(error),
    );
  }

  #onPayload(payload: Buffer): void {
    const message = parseFrame(payload);
    if (message instanceof RejectedFrame) {
      this.#stats.rejected[message.reason] = (this.#stats.rejected[message.reason] ?? 0) + 1;
      return;
    }
    switch (message.type) {
      case "response":
        if (this.#calls.resolve(message.id, message.result)) this.#window?.recordSuccess();
        else this.#stats.unmatchedReplies++;
        return;
      case "error": {
        const call = this.#calls.take(message.id);
        if (call === undefined) {
          this.#stats.unmatchedReplies++;
          return;
        }
        if (this.#countApplicationErrors) this.#recordFailure("remote error");
        else this.#window?.recordSuccess();
        const remote = parseRemoteError(message.error, message.stack);
        call.reject(new RemoteCallError(remote.type, remote.message, remote.stack, call.functionName));
        return;
      }
      case "heartbeat":
        if (!this.#calls.resolve(message.id, message)) this.#stats.unmatchedReplies++;
        return;
      case "stdout":
      case "stderr":
        this.#output(message.type, message.output);
        return;
      default:
        return; // calls and shutdowns are not for a parent
    }
  }

  #output(stream: OutputStream, line: string): void {
    this.emit(stream, line);
    if (this.#options.onOutput) {
      this.#options.onOutput(stream, line, this.name);
      return;
    }
    const target = stream === "stdout" ? process.stdout : process.stderr;
    target.write(`[${this.name} ${stream.toUpperCase()}]: ${line}\n`);
  }

  #onExit(child: ProcessActor, exit: ProcessExit): void {
    if (child !== this.#process) return;
    this.emit("exit", exit);
    if (!LIVE.has(this.#state)) return; // starting (open reports it), restarting or stopping
    const error = new WorkerExitedError(this.name, exit.code, exit.signal, child.stderrTail);
    this.#exitError = error;
    // Nothing waits for its timeout: every call in flight learns of the exit now.
    this.#failInFlight(error);
    const reason = exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`;
    this.#send({ type: "DOWN", reason, normal: exit.code === 0 || this.#shutdownSent });
  }

  #onChannelError(error: unknown): void {
    process.stderr.write(`[${this.name}] multifrost: receive loop failed: ${String(error)}\n`);
  }

  #send(event: ConnectionEvent): void {
    this.#machine.send(event);
  }

  #registry(): RegistryBackend {
    if (this.#target.kind !== "connect") throw new Error("not a connect-mode worker");
    return this.#target.registry;
  }

  #machineInput(breaker: CircuitBreakerOptions | undefined): ConnectionInput {
    const o = this.#options;
    const timeoutMs = this.heartbeatTimeout * 1000;
    const slowMs = o.heartbeatSlowThreshold === undefined ? timeoutMs / 2 : checkSeconds(o.heartbeatSlowThreshold, "heartbeatSlowThreshold", false) * 1000;
    const resetTimeoutMs = checkTimeout(breaker?.resetTimeout ?? DEFAULTS.circuitResetTimeout, "circuitBreaker.resetTimeout");
    return {
      mode: this.#target.kind,
      autoRestart: this.autoRestart,
      restartType: checkRestartType(o.restart ?? "permanent"),
      maxRestarts: this.maxRestartAttempts,
      heartbeat: { intervalMs: this.heartbeatInterval * 1000, timeoutMs, maxMisses: this.heartbeatMaxMisses, slowMs },
      backoff: resolveBackoff(o.backoff),
      circuit: {
        resetTimeoutMs,
        multiplier: breaker?.resetMultiplier ?? 2,
        maxResetTimeoutMs: Math.max(resetTimeoutMs, breaker?.maxResetTimeout ?? DEFAULTS.circuitMaxResetTimeout),
      },
      stablePeriodMs: checkTimeout(o.stablePeriod ?? DEFAULTS.stablePeriod, "stablePeriod"),
    };
  }

  #notRunningError(): Error {
    if (this.#state === "failed" && this.#exitError) return this.#exitError;
    return new WorkerNotRunningError(this.name, this.#state === "failed" ? `failed: ${this.stateReason}` : this.#state);
  }

  #circuitOpenError(): CircuitOpenError {
    const reason = this.#state === "half-open" ? "half-open: a probe call is in flight" : this.stateReason;
    return new CircuitOpenError(this.name, reason);
  }

  #timeoutError(call: PendingCall): Error {
    if (!this.#heartbeatIds.has(call.id)) this.#recordFailure(`'${call.functionName}' timed out`);
    // A worker in another namespace ignores the call silently, so the namespace is always named.
    return new CallTimeoutError(call.functionName, this.#requestedTimeout(call), `namespace '${call.namespace}': a worker in another namespace ignores the call`);
  }

  #startFailure(spawnError: Error | undefined, exit: ProcessExit, child: ProcessActor): WorkerStartError {
    if (spawnError) {
      return new WorkerStartError(`Worker '${this.name}': cannot run '${this.argv[0]}': ${spawnError.message}`, { cause: spawnError });
    }
    const exited = new WorkerExitedError(this.name, exit.code, exit.signal, child.stderrTail);
    return new WorkerStartError(`${exited.message.split("\n")[0]} before it was ready${tailText(child)}`, { cause: exited });
  }

  #startTimeoutFailure(error: unknown, timeoutMs: number, child: ProcessActor): WorkerStartError {
    if (error instanceof CallTimeoutError) {
      return new WorkerStartError(
        `Worker '${this.name}' did not answer a heartbeat within ${timeoutMs}ms (is it a comlink_ipc_v4 child?)${tailText(child)}`,
        { cause: error },
      );
    }
    return new WorkerStartError(`Worker '${this.name}' failed to start: ${String(error)}`, { cause: error });
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function tailText(child: ProcessActor): string {
  const tail = child.stderrTail;
  return tail.length ? `\n--- last stderr lines ---\n${tail.join("\n")}` : "";
}

function isValidTimeout(value: unknown): value is number {
  return typeof value === "number" && (value === Infinity || (Number.isFinite(value) && value > 0));
}

function checkTimeout(value: number, name: string): number {
  if (!isValidTimeout(value)) throw new InvalidArgumentError(`${name} must be a positive number of ms or Infinity, got ${String(value)}`);
  return value;
}

function checkSeconds(value: number, name: string, zeroAllowed: boolean): number {
  const ok = typeof value === "number" && Number.isFinite(value) && (value > 0 || (zeroAllowed && value === 0));
  if (!ok) throw new InvalidArgumentError(`${name} must be a ${zeroAllowed ? "non-negative" : "positive"} number of seconds, got ${String(value)}`);
  return value;
}

function checkCount(value: number, name: string, min = 0): number {
  const ok = value === Infinity || (Number.isInteger(value) && value >= min);
  if (!ok) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (or Infinity), got ${String(value)}`);
  return value;
}

function checkRetries(value: number | undefined): number {
  if (value === undefined) return 1;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`retries must be an integer ≥ 0, got ${String(value)}`);
  return value;
}

function checkRestartType(value: string): RestartType {
  if (value !== "permanent" && value !== "transient" && value !== "temporary") {
    throw new InvalidArgumentError(`restart must be "permanent", "transient" or "temporary", got ${JSON.stringify(value)}`);
  }
  return value;
}
