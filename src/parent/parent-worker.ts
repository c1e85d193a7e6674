import { EventEmitter } from "node:events";
import { basename } from "node:path";
import type { Actor } from "xstate";
import { splitCommandLine } from "../actors/command-line.js";
import type { ProcessExit } from "../actors/process-actor.js";
import { InvalidArgumentError } from "../errors.js";
import { connectionMachine, LIVE_STATES as LIVE, type ConnectionState } from "../machines/connection.js";
import { createLogSink } from "../observability/logger.js";
import { openRegistry, type RegistryBackend } from "../registry/index.js";
import { CallClient, type CallClientStats } from "./call-client.js";
import { createCallProxy, type CallOptions, type CallProxy, type DynamicFunctions } from "./call-proxy.js";
import { createStreamProxy, type CallStream, type StreamOptions, type StreamProxy } from "./call-stream.js";
import { defaultInterpreter } from "./interpreter.js";
import { connectionInputOf } from "./connection-input.js";
import type { ConnectOptions, ParentOptions, SpawnOptions } from "./options.js";
import { resolveOptions, type ResolvedOptions } from "./resolve-options.js";
import { OutputPrinter } from "./output-printer.js";
import { ServiceTransport } from "./service-transport.js";
import { SpawnTransport } from "./spawn-transport.js";
import type { Transport, TransportHost } from "./transport.js";
import { WorkerLifecycle, type StateChange } from "./worker-lifecycle.js";
import { WorkerObserver, type WorkerSnapshot } from "./worker-snapshot.js";
import type { CallMetrics } from "../observability/call-metrics.js";
import { serveHealth, type HealthOptions, type HealthServer } from "../observability/health.js";

export type { StateChange } from "./worker-lifecycle.js";

export interface ParentWorkerEvents {
  stdout: [line: string];
  stderr: [line: string];
  exit: [exit: ProcessExit];
  state: [change: StateChange];
}

export type ParentWorkerStats = CallClientStats;

/** Set by a supervisor on the workers it creates (not a public option). */
export interface SupervisedOptions {
  /** The supervisor decides restarts: a down connection waits for `reopen()`. */
  readonly supervised?: boolean;
  /** Connect only to this registered instance of the service (a service pool's member); see `instanceKey`. */
  readonly instance?: string;
}

/**
 * The parent's view of one worker (a façade): starts it, calls its functions, watches it
 * (heartbeats, circuit breaker), restarts or reconnects it, stops it. Its lifecycle is an XState
 * connection machine (`state`, the `state` event) that the WorkerLifecycle drives; calls go
 * through the CallClient and never through the machine; the Transport spawns or finds the worker.
 */
export class ParentWorker extends EventEmitter<ParentWorkerEvents> {
  readonly name: string;
  /** Spawn mode: the script ("" in connect mode). */
  readonly scriptPath: string;
  /** Spawn mode: the full command line ([] in connect mode). */
  readonly argv: readonly string[];
  /** Connect mode: the service id. */
  readonly serviceId: string | undefined;
  /** The checked settings this worker runs with (every duration in ms). */
  readonly settings: ResolvedOptions;
  readonly autoRestart: boolean;
  /** Spawn mode (a process of ours), as opposed to connect mode. */
  readonly spawned: boolean;
  /** `worker.call.<fn>()` — the same proxy a handle offers. */
  readonly call: CallProxy<DynamicFunctions>;

  readonly #supervised: boolean;
  readonly #client: CallClient;
  readonly #transport: Transport;
  readonly #lifecycle: WorkerLifecycle;
  readonly #printer: OutputPrinter;
  readonly #observer: WorkerObserver;

  private constructor(
    target: { kind: "spawn"; scriptPath: string; argv: readonly string[] } | { kind: "connect"; serviceId: string; registry: RegistryBackend },
    options: ParentOptions & SupervisedOptions,
  ) {
    super();
    this.scriptPath = target.kind === "spawn" ? target.scriptPath : "";
    this.argv = target.kind === "spawn" ? target.argv : [];
    this.serviceId = target.kind === "connect" ? target.serviceId : undefined;
    this.#supervised = options.supervised ?? false;
    this.name = options.name ?? (target.kind === "spawn" ? basename(target.scriptPath) : target.serviceId);
    this.settings = resolveOptions(options);
    this.autoRestart = options.autoRestart ?? target.kind === "connect";
    const log = createLogSink(options.logger, options.logLevel);
    this.spawned = target.kind === "spawn";
    this.#observer = new WorkerObserver(this);
    this.#printer = new OutputPrinter(this.name, (stream, line) => this.emit(stream, line), options);
    this.#client = new CallClient(
      {
        name: this.name,
        tell: (event) => this.#lifecycle.tell(event),
        output: (stream, line) => this.#printer.output(stream, line),
        notRunningError: () => this.#lifecycle.notRunningError(),
        stateReason: () => this.stateReason,
        heartbeat: () => this.#observer.heartbeat(),
      },
      this.settings,
      options.namespace,
      options.clientName,
    );
    const host: TransportHost = {
      name: this.name,
      settings: this.settings,
      client: this.#client,
      supervised: this.#supervised,
      isLive: () => LIVE.has(this.#lifecycle.state),
      lost: (channel, error, reason, normal) => this.#lifecycle.lost(channel, error, reason, normal),
      output: (stream, line) => this.#printer.output(stream, line),
      exited: (exit) => this.emit("exit", exit),
      log,
    };
    this.#transport =
      target.kind === "spawn" ? new SpawnTransport(host, target.argv, options) : new ServiceTransport(host, target.serviceId, target.registry, options.curve, options.instance);
    this.call = createCallProxy((fn, args, callOptions) => this.invoke(fn, args, callOptions));

    this.#lifecycle = new WorkerLifecycle(
      {
        name: this.name,
        client: this.#client,
        transport: this.#transport,
        supervised: this.#supervised,
        heartbeatTimeoutMs: this.settings.heartbeatTimeoutMs,
        log,
        changed: (change) => {
          this.#observer.changed(change.from, change.to, change.reason, change.at);
          this.emit("state", change);
        },
      },
      connectionInputOf(this.settings, target.kind, this.autoRestart, this.#supervised),
      // Named after the worker (its tree path when supervised) in inspection streams; a system id
      // must be unique in its actor system, which a user's own parentActor does not promise.
      { inspect: options.parentActor ? undefined : options.inspect, parent: options.parentActor, systemId: this.#supervised || !options.parentActor ? this.name : undefined },
    );
  }

  /**
   * A worker that runs `executable script` (no shell). `executable` may hold several words
   * (`"npx tsx"`) or be an argv array; `"node"` means this Node binary. Without one, the script's
   * extension picks it (`.py` → `$MULTIFROST_PYTHON` or `python3`, `.js`/`.mjs`/`.cjs` → node; see interpreter.ts).
   */
  static spawn(scriptPath: string, executable?: string | readonly string[], options: SpawnOptions & SupervisedOptions = {}): ParentWorker {
    if (typeof scriptPath !== "string" || scriptPath.trim() === "") {
      throw new InvalidArgumentError("spawn() needs a script path");
    }
    if (executable !== undefined && typeof executable !== "string" && !(Array.isArray(executable) && executable.every((word) => typeof word === "string"))) {
      throw new InvalidArgumentError(`spawn(): executable must be a string or an array of strings, got ${JSON.stringify(executable)}`);
    }
    const command = executable === undefined ? defaultInterpreter(scriptPath) : typeof executable === "string" ? splitCommandLine(executable) : [...executable];
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
    await (worker.#transport as ServiceTransport).registry.discover(serviceId, timeoutMs);
    return worker;
  }

  /** Like `connect()`, without waiting for the service to be registered (`start()` waits for it). */
  static forService(serviceId: string, options: ConnectOptions & SupervisedOptions = {}): ParentWorker {
    if (typeof serviceId !== "string" || serviceId.length === 0) {
      throw new InvalidArgumentError("connect() needs a service id");
    }
    const registry = openRegistry(options.registry, options.registryDir);
    return new ParentWorker({ kind: "connect", serviceId, registry }, options);
  }

  /** A handle sharing this worker (v4 API). Several handles may share one worker. */
  handle<T extends object = DynamicFunctions>(): ParentHandle<T> {
    return new ParentHandle<T>(this);
  }

  get state(): ConnectionState {
    return this.#lifecycle.state;
  }

  /** Why the connection entered its current state (e.g. "exit 137", "heartbeat missed (1 in a row)"). */
  get stateReason(): string {
    return this.#lifecycle.reason;
  }

  /** The connection machine's actor (to subscribe, or to hand to tooling). */
  /** The worker's state and figures as plain JSON: calls by outcome, latency, heartbeat, circuit, CPU/RSS. */
  snapshot(): WorkerSnapshot {
    return this.#observer.snapshot();
  }

  /** Consecutive heartbeats missed so far (0 once one is answered). */
  get heartbeatMisses(): number {
    return this.#lifecycle.actor.getSnapshot().context.misses;
  }

  /** Calls by outcome and the latency histogram (always on; also recorded through OpenTelemetry). */
  get metrics(): CallMetrics {
    return this.#client.metrics;
  }

  /** Serves /healthz, /readyz, /metrics (Prometheus) and /tree (the snapshot) for this worker; 127.0.0.1 by default. */
  serveHealth(options: HealthOptions = {}): Promise<HealthServer> {
    return serveHealth(
      {
        snapshot: () => this.snapshot(),
        workers: () => [{ snapshot: this.snapshot(), latency: this.metrics.latency }],
        ready: () => LIVE.has(this.state),
      },
      options,
    );
  }

  get actor(): Actor<typeof connectionMachine> {
    return this.#lifecycle.actor;
  }

  /** The pid of the current (or last) child process (spawn mode). */
  get pid(): number | undefined {
    return this.#transport.pid;
  }

  /** Spawn mode: the port the parent bound for the child; connect mode: the service's port. */
  get port(): number | undefined {
    return this.#transport.port;
  }

  /** v4: default per-call timeout in ms. */
  get defaultTimeout(): number {
    return this.settings.defaultTimeoutMs;
  }

  /** v4: restarts allowed with `autoRestart` before giving up. */
  get maxRestartAttempts(): number {
    return this.settings.maxRestartAttempts;
  }

  /** v4: seconds between heartbeats. */
  get heartbeatInterval(): number {
    return this.settings.heartbeatIntervalMs / 1000;
  }

  /** v4: seconds to wait for a heartbeat answer. */
  get heartbeatTimeout(): number {
    return this.settings.heartbeatTimeoutMs / 1000;
  }

  get heartbeatMaxMisses(): number {
    return this.settings.heartbeatMaxMisses;
  }

  /** v4: connected and the circuit closed. */
  get isHealthy(): boolean {
    const state = this.#lifecycle.state;
    return state === "connected" || state === "degraded";
  }

  /** v4: true while the circuit breaker refuses calls (open or half-open). */
  get circuitOpen(): boolean {
    const state = this.#lifecycle.state;
    return state === "circuit-open" || state === "half-open";
  }

  /** v4: restarts (or reconnects) over the worker's whole life. */
  get restartCount(): number {
    return this.#lifecycle.totalRestarts;
  }

  /** Restarts since the connection was last stable (what a backoff grows with). */
  get recentRestarts(): number {
    return this.#lifecycle.recentRestarts;
  }

  get lastHeartbeatRttMs(): number | undefined {
    return this.#client.lastHeartbeatRttMs;
  }

  /** Calls sent (or waiting to be sent) and not yet answered. */
  get pendingCalls(): number {
    return this.#client.pending;
  }

  /** Calls waiting for the worker to come (back) up. */
  get bufferedCalls(): number {
    return this.#client.buffered;
  }

  get stats(): Readonly<ParentWorkerStats> {
    return this.#client.stats;
  }

  /** Starts (or reconnects) and resolves once the worker has answered a heartbeat. */
  start(): Promise<void> {
    return this.#lifecycle.start();
  }

  /**
   * Sends `shutdown`, lets the child finish its calls, then SIGTERM and SIGKILL to its whole
   * process group if it has not exited (a connected service is only disconnected). Resolves when
   * nothing of the group is left; calls still pending are rejected.
   */
  stop(): Promise<void> {
    return this.#lifecycle.stop();
  }

  /**
   * Restarts the worker now: graceful stop, then start. A worker waiting in `restarting` for its
   * supervisor's order opens again at once. `immediate: false` waits for the backoff (unsupervised only).
   */
  restart(reason = "restart requested", immediate = true): Promise<void> {
    return this.#lifecycle.restart(reason, immediate);
  }

  /**
   * A supervisor's order to a supervised worker that is up: close it gracefully (its calls in
   * flight may finish until the close ends) and wait in `restarting` — calls made meanwhile wait
   * in the buffer — until `restart()` opens it again. Resolves once it is `restarting`.
   */
  hold(reason: string): Promise<void> {
    return this.#lifecycle.hold(reason);
  }

  /**
   * v4 API: `callFunction(name, args, timeoutMs, namespace, clientName)`, plus optional per-call
   * `options` (e.g. `{ signal }`); a positional argument wins over the same option.
   */
  callFunction<T = unknown>(functionName: string, args: unknown[] = [], timeout?: number, namespace?: string, clientName?: string, options?: CallOptions): Promise<T> {
    if (options === undefined) return this.#client.call(functionName, args, timeout, namespace, clientName, undefined) as Promise<T>;
    return this.#client.call(functionName, args, timeout ?? options.timeout, namespace ?? options.namespace, clientName ?? options.clientName, options) as Promise<T>;
  }

  /** Calls `functionName(...args)` with per-call options (what `handle.call.withOptions(o).fn()` does). */
  invoke<T = unknown>(functionName: string, args: unknown[], options?: CallOptions): Promise<T> {
    return (
      options === undefined
        ? this.#client.call(functionName, args, undefined, undefined, undefined, undefined)
        : this.#client.call(functionName, args, options.timeout, options.namespace, options.clientName, options)
    ) as Promise<T>;
  }

  /**
   * Calls `functionName(...args)` as a stream (docs/api.md, Streaming): the values the worker's
   * generator yields, as an AsyncIterable. `options.timeout` bounds each wait for the next value,
   * `options.totalTimeout` the whole stream.
   */
  stream<T = unknown>(functionName: string, args: unknown[] = [], options?: StreamOptions): CallStream<T> {
    return this.#client.stream(functionName, args, options) as CallStream<T>;
  }

  /** Sends a heartbeat and resolves with the round-trip time in ms. */
  async ping(timeoutMs = this.settings.heartbeatTimeoutMs): Promise<number> {
    const state = this.#lifecycle.state;
    // While starting, the socket already queues messages for the child.
    if (state !== "spawning" && state !== "connecting" && !LIVE.has(state)) throw this.#lifecycle.notRunningError();
    return this.#client.ping(timeoutMs);
  }

  /** Lines of this worker's output that the default printing dropped (stdout/stderr not read fast enough). */
  get outputLinesDropped(): number {
    return this.#printer.dropped;
  }
}

/**
 * A handle on a worker (v4 API): `start()`, `stop()` and `call.<fn>()`. Several handles may
 * share one worker; `stop()` through any of them stops it for all. It lives here, beside the
 * worker it wraps, so the two do not import each other.
 */
export class ParentHandle<T extends object = DynamicFunctions> {
  readonly worker: ParentWorker;
  readonly call: CallProxy<T>;
  /** `handle.stream.<fn>(...args)`: the values a generator method yields, as an AsyncIterable. */
  readonly stream: StreamProxy<T>;

  constructor(worker: ParentWorker) {
    this.worker = worker;
    this.call = createCallProxy<T>((fn, args, options) => worker.invoke(fn, args, options));
    this.stream = createStreamProxy<T>((fn, args, options) => worker.stream(fn, args, options));
  }

  start(): Promise<void> {
    return this.worker.start();
  }

  stop(): Promise<void> {
    return this.worker.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.worker.stop();
  }
}
