import { EventEmitter } from "node:events";
import { basename } from "node:path";
import { createActor, type Actor } from "xstate";
import { CallTable, type PendingCall } from "./actors/call-table.js";
import { splitCommandLine } from "./actors/command-line.js";
import { ProcessActor, type ProcessExit } from "./actors/process-actor.js";
import { DealerChannel } from "./actors/zmq-channel.js";
import { FileRegistry, type RegistryBackend } from "./registry/index.js";
import { createCallProxy, type CallOptions, type CallProxy, type DynamicFunctions } from "./call-proxy.js";
import {
  CallTimeoutError,
  InvalidArgumentError,
  RemoteCallError,
  SendFailedError,
  WorkerExitedError,
  WorkerNotRunningError,
  WorkerStartError,
} from "./errors.js";
import { workerLifecycleMachine, type LifecycleEvent, type LifecycleState } from "./machines/worker-lifecycle.js";
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

export interface SpawnOptions {
  /** Shown in output prefixes and errors. Default: the script's file name. */
  name?: string;
  /** Extra arguments after the script path (e.g. `["--worker"]`, which Python v4 parents add). */
  args?: readonly string[];
  /** Extra environment for the child (merged over this process's environment). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Default per-call timeout in ms. Default 30 000. `Infinity` waits forever. */
  defaultTimeout?: number;
  /** How long `start()` waits for the child's first heartbeat answer, in ms. Default 10 000. */
  startupTimeout?: number;
  /** After the `shutdown` message, how long `stop()` waits before SIGTERM, in ms. Default 2000. */
  shutdownTimeout?: number;
  /** After SIGTERM, how long `stop()` waits before SIGKILL, in ms. Default 2000. */
  killTimeout?: number;
  /** Namespace for calls that do not name one. Default "default". */
  namespace?: string;
  /** Sent as `client_name` on every call. */
  clientName?: string;
  /** Interface the parent binds for the child to connect to. Default 127.0.0.1. */
  host?: string;
  /**
   * Receives each line the child prints (its stdout/stderr pipes and forwarded output messages).
   * Replaces the default, which prints `[name STDOUT]: line` to this process's stdout/stderr.
   */
  onOutput?: (stream: OutputStream, line: string, workerName: string) => void;

  // v4 options, accepted for compatibility; supervision gives them effect.
  /** v4: restart the child when it dies. */
  autoRestart?: boolean;
  /** v4: restarts allowed before giving up. */
  maxRestartAttempts?: number;
  /** v4: seconds between heartbeats (0 disables). */
  heartbeatInterval?: number;
  /** v4: seconds to wait for a heartbeat answer. */
  heartbeatTimeout?: number;
  /** v4: consecutive missed heartbeats before the worker is considered dead. */
  heartbeatMaxMisses?: number;
}

/** Options for `ParentWorker.connect()`: the spawn options that make sense for a running service. */
export interface ConnectOptions
  extends Pick<
    SpawnOptions,
    | "name"
    | "defaultTimeout"
    | "startupTimeout"
    | "namespace"
    | "clientName"
    | "onOutput"
    | "heartbeatInterval"
    | "heartbeatTimeout"
    | "heartbeatMaxMisses"
  > {
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
  from: LifecycleState;
  to: LifecycleState;
  reason: string;
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
}

const DEFAULTS = {
  defaultTimeout: 30_000,
  startupTimeout: 10_000,
  shutdownTimeout: 2_000,
  killTimeout: 2_000,
};

/**
 * The parent's view of one worker process: starts it, calls its functions, stops it.
 * `ParentWorker.spawn(script, executable)` creates one; `start()` resolves once the child has
 * answered a heartbeat.
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
  /** v4 compatibility; counts restarts once supervision restarts this worker. */
  restartCount = 0;
  /** `worker.call.<fn>()` — the same proxy a handle offers. */
  readonly call: CallProxy<DynamicFunctions>;

  readonly #options: SpawnOptions & ConnectOptions;
  readonly #target: WorkerTarget;
  readonly #namespace: string;
  readonly #lifecycle: Actor<typeof workerLifecycleMachine>;
  readonly #calls: CallTable;
  readonly #stats: ParentWorkerStats = { callsSent: 0, unmatchedReplies: 0, rejected: {} };
  #state: LifecycleState = "idle";
  #channel: DealerChannel | undefined;
  #process: ProcessActor | undefined;
  #port: number | undefined;
  #exitError: WorkerExitedError | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #lastHeartbeatRttMs: number | undefined;

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
    this.autoRestart = options.autoRestart ?? false;
    this.maxRestartAttempts = options.maxRestartAttempts ?? 5;
    this.heartbeatInterval = options.heartbeatInterval ?? 5;
    this.heartbeatTimeout = options.heartbeatTimeout ?? 3;
    this.heartbeatMaxMisses = options.heartbeatMaxMisses ?? 3;
    this.#calls = new CallTable((call) => this.#timeoutError(call));
    this.call = createCallProxy((fn, args, callOptions) => this.#invoke(fn, args, callOptions));

    this.#lifecycle = createActor(workerLifecycleMachine);
    this.#lifecycle.subscribe((snapshot) => {
      const to = snapshot.value as LifecycleState;
      if (to === this.#state) return;
      const from = this.#state;
      this.#state = to;
      this.emit("state", { from, to, reason: snapshot.context.reason });
    });
    this.#lifecycle.start();
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
   * heartbeat; `stop()` disconnects and never stops the service.
   */
  static async connect(serviceId: string, timeoutMs = 5000, options: ConnectOptions = {}): Promise<ParentWorker> {
    if (typeof serviceId !== "string" || serviceId.length === 0) {
      throw new InvalidArgumentError("connect() needs a service id");
    }
    const registry = options.registry ?? new FileRegistry({ dir: options.registryDir });
    await registry.discover(serviceId, timeoutMs);
    return new ParentWorker({ kind: "connect", serviceId, registry }, options);
  }

  /** A handle sharing this worker (v4 API). Several handles may share one worker. */
  handle<T extends object = DynamicFunctions>(): ParentHandle<T> {
    return new ParentHandle<T>(this);
  }

  get state(): LifecycleState {
    return this.#state;
  }

  /** The child's pid while it runs. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** The port the parent bound for the child. */
  get port(): number | undefined {
    return this.#port;
  }

  get isHealthy(): boolean {
    return this.#state === "connected";
  }

  /** v4 compatibility: the circuit breaker arrives with supervision; it is never open here. */
  get circuitOpen(): boolean {
    return false;
  }

  get lastHeartbeatRttMs(): number | undefined {
    return this.#lastHeartbeatRttMs;
  }

  get pendingCalls(): number {
    return this.#calls.size;
  }

  get stats(): Readonly<ParentWorkerStats> {
    return this.#stats;
  }

  /** Binds, spawns the child and resolves once it has answered a heartbeat. */
  start(): Promise<void> {
    if (this.#state === "connected") return Promise.resolve();
    if (this.#starting) return this.#starting;
    if (this.#state === "stopping") {
      return Promise.reject(new WorkerStartError(`Worker '${this.name}' is stopping; await stop() before start()`));
    }
    this.#starting = this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /**
   * Sends `shutdown`, lets the child finish its calls, then SIGTERM and SIGKILL to its whole
   * process group if it has not exited. Calls still pending afterwards are rejected.
   */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    this.#stopping ??= this.#stop().finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  /** v4 API: `callFunction(name, args, timeoutMs, namespace, clientName)`. */
  callFunction<T = unknown>(
    functionName: string,
    args: unknown[] = [],
    timeout?: number,
    namespace?: string,
    clientName?: string,
  ): Promise<T> {
    return this.#call(functionName, args, timeout, namespace, clientName) as Promise<T>;
  }

  /** Sends a heartbeat and resolves with the round-trip time in ms. */
  async ping(timeoutMs = this.heartbeatTimeout * 1000): Promise<number> {
    const channel = this.#channel;
    if (!channel || (this.#state !== "connected" && this.#state !== "starting")) {
      throw this.#notRunningError();
    }
    return this.#heartbeat(channel, timeoutMs);
  }

  #invoke(functionName: string, args: unknown[], options: CallOptions | undefined): Promise<unknown> {
    return options === undefined
      ? this.#call(functionName, args, undefined, undefined, undefined)
      : this.#call(functionName, args, options.timeout, options.namespace, options.clientName);
  }

  #call(
    functionName: string,
    args: unknown[],
    timeout: number | undefined,
    namespace: string | undefined,
    clientName: string | undefined,
  ): Promise<unknown> {
    const channel = this.#channel;
    if (channel === undefined || (this.#state !== "connected" && this.#state !== "starting")) {
      return Promise.reject(this.#notRunningError());
    }
    if (typeof functionName !== "string" || functionName.length === 0) {
      return Promise.reject(new InvalidArgumentError("the function name must be a non-empty string"));
    }
    if (!Array.isArray(args)) return Promise.reject(new InvalidArgumentError("args must be an array"));
    const timeoutMs = timeout ?? this.defaultTimeout;
    if (timeoutMs !== this.defaultTimeout && !isValidTimeout(timeoutMs)) {
      return Promise.reject(new InvalidArgumentError(`timeout must be a positive number of ms or Infinity, got ${String(timeout)}`));
    }
    const id = nextMessageId();
    let bytes: Buffer;
    try {
      const message = createCall(
        id,
        functionName,
        prepareForWire(args, "args") as unknown[],
        namespace ?? this.#namespace,
        clientName ?? this.#options.clientName,
      );
      bytes = encodeMessage(message);
    } catch (error) {
      return Promise.reject(error);
    }
    const promise = this.#calls.register(id, functionName, timeoutMs, namespace ?? this.#namespace);
    this.#stats.callsSent++;
    channel.send(bytes, id);
    return promise;
  }

  async #start(): Promise<void> {
    this.#exitError = undefined;
    this.#send({ type: "START" });
    const target = this.#target;
    if (target.kind === "connect") return this.#startConnected(target);
    const channel = this.#createChannel();
    try {
      this.#port = await channel.bind(this.#options.host ?? "127.0.0.1");
    } catch (error) {
      channel.close();
      this.#channel = undefined;
      this.#send({ type: "START_FAILED", reason: `bind failed: ${String(error)}` });
      throw new WorkerStartError(`Worker '${this.name}': cannot bind a port: ${String(error)}`, { cause: error });
    }
    this.#listen(channel);
    await this.#spawnChild(channel, target);
  }

  /** Connect mode: look the service up (it may have moved since connect()), connect, heartbeat. */
  async #startConnected(target: Extract<WorkerTarget, { kind: "connect" }>): Promise<void> {
    const startupTimeout = this.#options.startupTimeout ?? DEFAULTS.startupTimeout;
    let failure: WorkerStartError | undefined;
    try {
      const entry = await target.registry.discover(target.serviceId, startupTimeout);
      this.#port = entry.port;
      const channel = this.#createChannel();
      channel.connect(`tcp://${this.#options.host ?? "127.0.0.1"}:${entry.port}`);
      this.#listen(channel);
      await this.#heartbeat(channel, startupTimeout);
    } catch (error) {
      failure =
        error instanceof CallTimeoutError
          ? new WorkerStartError(
              `Service '${target.serviceId}' (port ${this.#port}) did not answer a heartbeat within ${startupTimeout}ms`,
              { cause: error },
            )
          : new WorkerStartError(`Cannot connect to service '${target.serviceId}': ${errorText(error)}`, { cause: error });
    }
    await this.#finishStart(failure);
  }

  /** Ends start(): on failure, tear down and throw it; else the worker is ready (unless stopped meanwhile). */
  async #finishStart(failure: WorkerStartError | undefined): Promise<void> {
    if (failure) {
      if (this.#state === "starting") this.#send({ type: "START_FAILED", reason: failure.message });
      await this.#teardown(0);
      throw failure;
    }
    if (this.#state !== "starting") {
      throw new WorkerStartError(`Worker '${this.name}' was stopped before it became ready`);
    }
    this.#send({ type: "READY" });
  }

  #createChannel(): DealerChannel {
    const channel = new DealerChannel((id, error) => {
      if (id !== undefined) this.#calls.reject(id, new SendFailedError(`Failed to send to worker '${this.name}': ${String(error)}`, { cause: error }));
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

  /** Spawn mode: start the child with the bound port and wait for its first heartbeat answer. */
  async #spawnChild(channel: DealerChannel, target: Extract<WorkerTarget, { kind: "spawn" }>): Promise<void> {
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
    let failure: WorkerStartError | undefined;
    try {
      const ready = this.#heartbeat(channel, startupTimeout);
      const exited = child.whenExited().then((exit) => {
        throw this.#startFailure(spawnError, exit, child);
      });
      await Promise.race([ready, exited]);
    } catch (error) {
      failure =
        error instanceof WorkerStartError
          ? error
          : error instanceof WorkerExitedError || spawnError
            ? this.#startFailure(spawnError, child.exitInfo ?? { code: null, signal: null }, child)
            : this.#startTimeoutFailure(error, startupTimeout, child);
    }
    await this.#finishStart(failure);
  }

  async #stop(): Promise<void> {
    const wasStarting = this.#starting;
    this.#send({ type: "STOP" });
    const channel = this.#channel;
    const child = this.#process;
    if (channel && child && !child.exited) channel.send(encodeMessage(createShutdown(nextMessageId())));
    await this.#teardown(this.#options.shutdownTimeout ?? DEFAULTS.shutdownTimeout);
    if (wasStarting) await wasStarting.catch(() => undefined);
    this.#send({ type: "STOPPED" });
  }

  /** Ends the child (grace → SIGTERM → SIGKILL), rejects what is left, closes the socket. */
  async #teardown(graceMs: number): Promise<void> {
    const child = this.#process;
    if (child) await child.terminate(graceMs, this.#options.killTimeout ?? DEFAULTS.killTimeout);
    this.#calls.rejectAll(() => this.#notRunningError());
    this.#channel?.close();
    this.#channel = undefined;
  }

  async #heartbeat(channel: DealerChannel, timeoutMs: number): Promise<number> {
    const id = nextMessageId();
    const sentAt = performance.now();
    const reply = this.#calls.register(id, "heartbeat", timeoutMs, this.#namespace);
    channel.send(encodeMessage(createHeartbeat(id)), id);
    await reply;
    const rtt = performance.now() - sentAt;
    this.#lastHeartbeatRttMs = rtt;
    return rtt;
  }

  #onPayload(payload: Buffer): void {
    const message = parseFrame(payload);
    if (message instanceof RejectedFrame) {
      this.#stats.rejected[message.reason] = (this.#stats.rejected[message.reason] ?? 0) + 1;
      return;
    }
    switch (message.type) {
      case "response":
        if (!this.#calls.resolve(message.id, message.result)) this.#stats.unmatchedReplies++;
        return;
      case "error": {
        const call = this.#calls.take(message.id);
        if (call === undefined) {
          this.#stats.unmatchedReplies++;
          return;
        }
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
    if (this.#state === "stopping" || this.#state === "stopped") return;
    const error = new WorkerExitedError(this.name, exit.code, exit.signal, child.stderrTail);
    this.#exitError = error;
    // Nothing waits for its timeout: every pending call learns of the exit now.
    this.#calls.rejectAll(() => error);
    const how = exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`;
    this.#send({ type: "EXITED", reason: how });
    if (this.#state === "exited") {
      this.#channel?.close();
      this.#channel = undefined;
    }
  }

  #onChannelError(error: unknown): void {
    process.stderr.write(`[${this.name}] multifrost: receive loop failed: ${String(error)}\n`);
  }

  #send(event: LifecycleEvent): void {
    this.#lifecycle.send(event);
  }

  #notRunningError(): Error {
    if ((this.#state === "exited" || this.#state === "failed") && this.#exitError) return this.#exitError;
    return new WorkerNotRunningError(this.name, this.#state);
  }

  #timeoutError(call: PendingCall): Error {
    const namespace = call.namespace;
    const hint = namespace !== DEFAULT_NAMESPACE
      ? `namespace '${namespace}': a worker in another namespace ignores the call`
      : undefined;
    return new CallTimeoutError(call.functionName, call.timeoutMs, hint);
  }

  #startFailure(spawnError: Error | undefined, exit: ProcessExit, child: ProcessActor): WorkerStartError {
    if (spawnError) {
      return new WorkerStartError(`Worker '${this.name}': cannot run '${this.argv[0]}': ${spawnError.message}`, { cause: spawnError });
    }
    const exited = this.#exitError ?? new WorkerExitedError(this.name, exit.code, exit.signal, child.stderrTail);
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
  if (!isValidTimeout(value)) throw new InvalidArgumentError(`${name} must be a positive number of ms or Infinity`);
  return value;
}
