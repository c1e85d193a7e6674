import { EventEmitter } from "node:events";
import { basename } from "node:path";
import { createActor, fromPromise, type Actor } from "xstate";
import { stdioWriter } from "../actors/bounded-writer.js";
import { splitCommandLine } from "../actors/command-line.js";
import type { ProcessExit } from "../actors/process-actor.js";
import { StateWaiters } from "../actors/state-waiters.js";
import type { DealerChannel } from "../actors/zmq-channel.js";
import { InvalidArgumentError, WorkerExitedError, WorkerNotRunningError, WorkerStartError } from "../errors.js";
import {
  connectionMachine,
  connectionStateOf,
  LIVE_STATES as LIVE,
  type CloseInput,
  type ConnectionEvent,
  type ConnectionInput,
  type ConnectionState,
} from "../machines/connection.js";
import { FileRegistry, type RegistryBackend } from "../registry/index.js";
import { CallClient, type CallClientStats } from "./call-client.js";
import { createCallProxy, type CallOptions, type CallProxy, type DynamicFunctions } from "./call-proxy.js";
import { defaultInterpreter } from "./interpreter.js";
import { resolveOptions, type ConnectOptions, type OutputStream, type ParentOptions, type ResolvedOptions, type SpawnOptions } from "./options.js";
import { ParentHandle } from "./parent-handle.js";
import { ServiceTransport } from "./service-transport.js";
import { SpawnTransport } from "./spawn-transport.js";
import type { Transport, TransportHost } from "./transport.js";

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  reason: string;
  /** Caused by an order through the API (`restart()`, a supervisor holding a sibling), not by a down. */
  ordered?: boolean;
  /** `Date.now()` when it happened. */
  at: number;
}

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
}

/**
 * The parent's view of one worker (a façade): starts it, calls its functions, watches it
 * (heartbeats, circuit breaker), restarts or reconnects it, stops it. Its lifecycle is an XState
 * connection machine (`state`, the `state` event); calls go through the CallClient and never
 * through the machine; the Transport spawns or finds the worker.
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
  /** `worker.call.<fn>()` — the same proxy a handle offers. */
  readonly call: CallProxy<DynamicFunctions>;

  readonly #options: ParentOptions;
  readonly #supervised: boolean;
  readonly #client: CallClient;
  readonly #transport: Transport;
  readonly #machine: Actor<typeof connectionMachine>;
  readonly #waiters = new StateWaiters<ConnectionState>();
  #state: ConnectionState = "idle";
  #startError: Error | undefined;
  /** Why the last connection was lost; what calls refused while `failed` report. */
  #lostError: Error | undefined;
  #stopping: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  /** Set while an API order is being told to the machine (see #order). */
  #ordered = false;
  /** An ordered restart's reason: calls still in flight when its close ends are cut off then. */
  #cutAfterClose: string | undefined;

  private constructor(
    target: { kind: "spawn"; scriptPath: string; argv: readonly string[] } | { kind: "connect"; serviceId: string; registry: RegistryBackend },
    options: ParentOptions & SupervisedOptions,
  ) {
    super();
    this.scriptPath = target.kind === "spawn" ? target.scriptPath : "";
    this.argv = target.kind === "spawn" ? target.argv : [];
    this.serviceId = target.kind === "connect" ? target.serviceId : undefined;
    this.#options = options;
    this.#supervised = options.supervised ?? false;
    this.name = options.name ?? (target.kind === "spawn" ? basename(target.scriptPath) : target.serviceId);
    this.settings = resolveOptions(options);
    this.autoRestart = options.autoRestart ?? target.kind === "connect";
    this.#client = new CallClient(
      {
        name: this.name,
        tell: (event) => this.#tell(event),
        output: (stream, line) => this.#output(stream, line),
        notRunningError: () => this.#notRunningError(),
        stateReason: () => this.stateReason,
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
      isLive: () => LIVE.has(this.#state),
      lost: (channel, error, reason, normal) => this.#lost(channel, error, reason, normal),
      output: (stream, line) => this.#output(stream, line),
      exited: (exit) => this.emit("exit", exit),
    };
    this.#transport =
      target.kind === "spawn" ? new SpawnTransport(host, target.argv, options) : new ServiceTransport(host, target.serviceId, target.registry, options.curve);
    this.call = createCallProxy((fn, args, callOptions) => this.invoke(fn, args, callOptions));

    const machine = connectionMachine.provide({
      actors: {
        open: fromPromise<void, { attempt: number }>(({ signal }) => this.#open(signal)),
        ping: fromPromise<number, { timeoutMs: number }>(({ input }) => this.#client.ping(input.timeoutMs)),
        close: fromPromise<void, CloseInput>(({ input }) => this.#close(input)),
      },
      guards: {
        workerBusy: () => this.#client.busy(this.settings.heartbeatTimeoutMs),
        workerStopped: () => this.#transport.isStopped(),
      },
    });
    this.#machine = createActor(machine, {
      input: this.#machineInput(target.kind, this.#supervised),
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

  /** Restarts since the connection was last stable (what a backoff grows with). */
  get recentRestarts(): number {
    return this.#machine.getSnapshot().context.restarts;
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
    const state = this.#state;
    if (LIVE.has(state)) return Promise.resolve();
    if (state === "stopping") {
      return Promise.reject(new WorkerStartError(`Worker '${this.name}' is stopping; await stop() before start()`));
    }
    if (this.#starting) return this.#starting;
    const sending = state === "idle" || state === "stopped" || state === "failed";
    this.#starting = this.#waiters
      .until(
        (to) => {
          if (LIVE.has(to)) return true;
          if (to === "failed") throw this.#startError ?? this.#notRunningError();
          // Rejected once stopped, not while stopping: stop() callers see both settle together.
          if (to === "stopped") throw new WorkerStartError(`Worker '${this.name}' was stopped before it became ready`);
          return false;
        },
        sending ? undefined : { state: this.#state },
      )
      .finally(() => (this.#starting = undefined));
    if (sending) {
      this.#startError = undefined;
      this.#lostError = undefined;
      this.#tell({ type: "START" });
    }
    return this.#starting;
  }

  /**
   * Sends `shutdown`, lets the child finish its calls, then SIGTERM and SIGKILL to its whole
   * process group if it has not exited (a connected service is only disconnected). Resolves when
   * nothing of the group is left; calls still pending are rejected.
   */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    if (this.#stopping) return this.#stopping;
    this.#stopping = this.#waiters
      .until((to) => to === "stopped", this.#state === "stopping" ? { state: this.#state } : undefined)
      .finally(() => (this.#stopping = undefined));
    this.#tell({ type: "STOP" });
    return this.#stopping;
  }

  /**
   * Restarts the worker now: graceful stop, then start. A worker waiting in `restarting` for its
   * supervisor's order opens again at once. `immediate: false` waits for the backoff (unsupervised only).
   */
  restart(reason = "restart requested", immediate = true): Promise<void> {
    const state = this.#state;
    if (!LIVE.has(state) && state !== "restarting") return this.start();
    let opened = false;
    const restarted = this.#waiters.until((to) => {
      if (LIVE.has(to)) return true;
      if (to === "failed" || to === "stopped") throw this.#startError ?? this.#notRunningError();
      if (to === "spawning" || to === "connecting") opened = true;
      // Back to waiting for a supervisor's order: this attempt failed.
      else if (to === "restarting" && opened && this.#supervised) throw this.#startError ?? this.#notRunningError();
      return false;
    });
    if (state === "restarting") this.#tell({ type: "REOPEN", reason });
    else this.#order({ type: "RESTART", reason, immediate: immediate || this.#supervised });
    return restarted;
  }

  /**
   * A supervisor's order to a supervised worker that is up: close it gracefully (its calls in
   * flight may finish until the close ends) and wait in `restarting` — calls made meanwhile wait
   * in the buffer — until `restart()` opens it again. Resolves once it is `restarting`.
   */
  hold(reason: string): Promise<void> {
    if (!this.#supervised || !LIVE.has(this.#state)) return Promise.resolve();
    const held = this.#waiters.until((to) => to !== "stopping" && !LIVE.has(to));
    this.#order({ type: "RESTART", reason, immediate: false });
    return held;
  }

  /** An order through the API: the transition it causes is marked `ordered`. */
  #order(event: Extract<ConnectionEvent, { type: "RESTART" }>): void {
    if (LIVE.has(this.#state)) {
      // A graceful restart: what never left goes to the next connection; what the old child has,
      // it may still answer until the close ends (the close actor starts before we hear of the
      // transition, so this is set first).
      this.#client.rescueUnsent();
      this.#cutAfterClose = event.reason;
    }
    this.#ordered = true;
    try {
      this.#tell(event);
    } finally {
      this.#ordered = false;
    }
  }

  /** v4 API: `callFunction(name, args, timeoutMs, namespace, clientName)`. */
  callFunction<T = unknown>(functionName: string, args: unknown[] = [], timeout?: number, namespace?: string, clientName?: string): Promise<T> {
    return this.#client.call(functionName, args, timeout, namespace, clientName, undefined) as Promise<T>;
  }

  /** Calls `functionName(...args)` with per-call options (what `handle.call.withOptions(o).fn()` does). */
  invoke<T = unknown>(functionName: string, args: unknown[], options?: CallOptions): Promise<T> {
    return (
      options === undefined
        ? this.#client.call(functionName, args, undefined, undefined, undefined, undefined)
        : this.#client.call(functionName, args, options.timeout, options.namespace, options.clientName, options)
    ) as Promise<T>;
  }

  /** Sends a heartbeat and resolves with the round-trip time in ms. */
  async ping(timeoutMs = this.settings.heartbeatTimeoutMs): Promise<number> {
    const state = this.#state;
    // While starting, the socket already queues messages for the child.
    if (state !== "spawning" && state !== "connecting" && !LIVE.has(state)) throw this.#notRunningError();
    return this.#client.ping(timeoutMs);
  }

  // ── The connection machine's actors and what it hears ──────────────────────────────────────

  async #open(signal: AbortSignal): Promise<void> {
    try {
      await this.#transport.open(signal, this.#machine.getSnapshot().context.restarts);
    } catch (error) {
      this.#startError = error instanceof WorkerStartError ? error : new WorkerStartError(String(error), { cause: error });
      throw this.#startError;
    }
  }

  /** The transport lost the live connection: calls in flight learn it now, then the machine. */
  #lost(channel: DealerChannel | undefined, error: Error, reason: string, normal: boolean): void {
    this.#lostError = error;
    this.#client.connectionLost(channel, error);
    this.#tell({ type: "DOWN", reason, normal });
  }

  #onStateChange(from: ConnectionState, to: ConnectionState, reason: string): void {
    this.#state = to;
    const ordered = this.#ordered;
    if (LIVE.has(from) && to === "restarting") {
      if (!ordered) {
        // Not seen by the transport (hung): calls in flight are cut off all the same.
        this.#client.connectionLost(undefined, this.#lostError ?? new WorkerExitedError(this.name, null, null, [], reason));
        this.#lostError = undefined;
      }
    }
    if (LIVE.has(to) && !LIVE.has(from)) this.#lostError = undefined;
    this.#client.stateChanged(from, to);
    this.emit("state", ordered ? { from, to, reason, at: Date.now(), ordered } : { from, to, reason, at: Date.now() });
    this.#waiters.notify(to);
  }

  #close(input: CloseInput): Promise<void> {
    const closing = this.#transport.close(input.mode);
    if (this.#cutAfterClose === undefined) return closing;
    return closing.finally(() => {
      const reason = this.#cutAfterClose;
      this.#cutAfterClose = undefined;
      if (reason !== undefined) this.#client.connectionLost(undefined, new WorkerExitedError(this.name, null, null, [], reason));
    });
  }

  #tell(event: ConnectionEvent): void {
    this.#machine.send(event);
  }

  /** Lines the default printing dropped: this process's stdout/stderr was not read fast enough. */
  #outputDropped = 0;

  /** Lines of this worker's output that the default printing dropped (stdout/stderr not read fast enough). */
  get outputLinesDropped(): number {
    return this.#outputDropped;
  }

  #output(stream: OutputStream, line: string): void {
    this.emit(stream, line);
    if (this.#options.onOutput) {
      this.#options.onOutput(stream, line, this.name);
      return;
    }
    // Bounded: a pipe nobody reads holds at most 1 MiB; the rest is dropped, then reported in one line.
    if (!stdioWriter(stream).write(`[${this.name} ${stream.toUpperCase()}]: ${line}\n`)) this.#outputDropped++;
  }

  #machineInput(mode: "spawn" | "connect", supervised: boolean): ConnectionInput {
    const s = this.settings;
    return {
      mode,
      autoRestart: this.autoRestart,
      supervised,
      restartType: s.restart,
      maxRestarts: s.maxRestartAttempts,
      heartbeat: {
        intervalMs: s.heartbeatIntervalMs,
        timeoutMs: s.heartbeatTimeoutMs,
        maxMisses: s.heartbeatMaxMisses,
        slowMs: s.heartbeatSlowThresholdMs,
      },
      backoff: s.backoff,
      circuit: {
        resetTimeoutMs: s.circuit?.resetTimeoutMs ?? 5_000,
        multiplier: s.circuit?.resetMultiplier ?? 2,
        maxResetTimeoutMs: s.circuit?.maxResetTimeoutMs ?? 60_000,
      },
      stablePeriodMs: s.stablePeriodMs,
    };
  }

  #notRunningError(): Error {
    if (this.#state === "failed" && this.#lostError) return this.#lostError;
    return new WorkerNotRunningError(this.name, this.#state === "failed" ? `failed: ${this.stateReason}` : this.#state);
  }
}
