import { callableNames } from "./actors/callable-names.js";
import { DISPATCHER_DEFAULTS, Dispatcher, type Handler } from "./actors/dispatcher.js";
import { OutputCapture } from "./actors/output-capture.js";
import { PeerTable } from "./actors/peer-table.js";
import { curveServerPolicy, resolveServiceCurve, type ServiceCurveOptions } from "./actors/curve.js";
import { zapHandler } from "./actors/zap.js";
import { RouterChannel } from "./actors/zmq-channel.js";
import { InvalidArgumentError } from "./errors.js";
import { FileRegistry, type RegistryBackend } from "./registry/index.js";
import {
  DEFAULT_NAMESPACE,
  ENV_ENDPOINT,
  ENV_PORT,
  MAX_PORT,
  MIN_PORT,
  RejectedFrame,
  createError,
  createHeartbeatReply,
  createOutput,
  nextMessageId,
  encodeMessage,
  parseFrame,
  type HeartbeatMessage,
  type RejectReason,
} from "./wire/index.js";

export interface ChildWorkerOptions {
  /** Connect mode: the service id to register; the worker binds and parents connect to it. */
  serviceId?: string;
  /** Connect mode: where to register. Default: a FileRegistry (MULTIFROST_REGISTRY_DIR or ~/.multifrost). */
  registry?: RegistryBackend;
  /** Connect mode: shorthand for `registry: new FileRegistry({ dir })`. */
  registryDir?: string;
  /** Connect mode: the interface to bind. Default 127.0.0.1; anything else needs `curve` or `insecure: true`. */
  host?: string;
  /**
   * Connect mode: serve over CURVE — the service's key pair and, optionally, the client public keys
   * it admits (any CURVE client otherwise) — or the name of a key pair in the keys directory
   * (`$MULTIFROST_KEYS_DIR` or ~/.multifrost/keys; its `authorized_keys` lists admitted clients).
   * The public key is published in the registry entry (`publicKey`).
   */
  curve?: ServiceCurveOptions | string;
  /** Connect mode: allow a non-loopback `host` without CURVE. Default false. */
  insecure?: boolean;
  /** Calls that run at once; async handlers overlap up to this bound. Default 64. */
  concurrency?: number;
  /** How long `stop()` lets running calls finish before closing. Default 5000 ms. */
  shutdownGraceMs?: number;
  /**
   * After a `shutdown` message, SIGTERM, SIGINT or the parent's death, exit the process if it
   * has not exited by itself this long after `run()` resolved. Default 1000 ms; `false` never exits.
   */
  exitAfterStopMs?: number | false;
  /**
   * Spawn mode: stop (as when the parent dies) once the connection to the parent has been down
   * this long, and exit after `exitAfterStopMs`. It catches a parent that died behind a wrapper
   * (`/bin/sh -c`, npx), which leaves our ppid unchanged. Counted only after a first connection;
   * a reconnection within the grace cancels it. `false`: watch the ppid only.
   * @default 2000
   */
  orphanGraceMs?: number | false;
  /** Process-wide SIGTERM/SIGINT handling by `run()`. Default true. */
  handleSignals?: boolean;
  /**
   * Send what this process prints (`console.*`, `process.stdout/stderr.write`) to the connected
   * parents as stdout/stderr messages, one per line. Default true.
   */
  forwardOutput?: boolean;
  /**
   * Obey a `shutdown` message. A refused one is counted (`rejected["shutdown-refused"]`) and
   * logged once on this process's stderr.
   * @default true when spawned (COMLINK_ZMQ_PORT set), false for a connect-mode service
   */
  acceptShutdown?: boolean;
  /**
   * Calls that may wait for a slot beyond the `concurrency` running ones; a call beyond it gets
   * an `error` reply `"BusyError: …"` at once.
   * @default 10_000
   */
  maxQueuedCalls?: number;
  /**
   * Arguments a call may pass; more get an `error` reply `"InvalidArgumentError: …"` (a handler
   * receives its arguments on the stack, which holds about 120,000).
   * @default 65_536
   */
  maxArgs?: number;
  /**
   * Forwarded output waiting in the send queue beyond this many bytes (parents not reading fast
   * enough) is dropped until the queue has drained, then one line says how many lines were lost.
   * @default 8 MiB
   */
  maxOutputBacklogBytes?: number;
  /**
   * Bytes this process's own stdout/stderr may hold unwritten (a pipe nobody reads) before
   * printed lines are dropped, counted and reported by one line once it drains.
   * @default 1 MiB
   */
  maxPendingOutputBytes?: number;
}

export interface ChildWorkerStats {
  callsReceived: number;
  heartbeatsAnswered: number;
  /** Frames dropped or refused, by reason (`shutdown-refused`: a `shutdown` ignored, see `acceptShutdown`). */
  rejected: Partial<Record<RejectReason | "namespace-mismatch" | "short-envelope" | "shutdown-refused", number>>;
  sendFailures: number;
  /** Lines sent to parents as stdout/stderr messages (each counted once, whatever the number of parents). */
  linesForwarded: number;
  /** Printed lines dropped because the parents or this process's own stdout/stderr did not keep up. */
  linesDropped: number;
  /** Calls refused with a BusyError: `maxQueuedCalls` were already waiting. */
  callsRefusedBusy: number;
  /** Calls refused for passing more than `maxArgs` arguments. */
  callsRefusedArgs: number;
}

/** Connect mode: the name to register, where, and the interface to bind. */
interface ConnectSettings {
  serviceId: string;
  registry: RegistryBackend;
  host: string;
  curve: ServiceCurveOptions | undefined;
}

type StopReason = "shutdown-message" | "signal" | "parent-gone" | "api";

const PARENT_WATCH_MS = 1000;

/**
 * Base class for workers written in TypeScript/JavaScript. Subclass it, add methods, call
 * `run()`. Only the methods your subclasses define are callable (see `listFunctions()`).
 */
export abstract class ChildWorker {
  /** The namespace this worker answers; calls for another namespace are ignored (spec §9.3). */
  protected namespace: string = DEFAULT_NAMESPACE;
  protected readonly serviceId: string | undefined;

  readonly #options: Required<
    Pick<
      ChildWorkerOptions,
      | "concurrency"
      | "shutdownGraceMs"
      | "exitAfterStopMs"
      | "orphanGraceMs"
      | "handleSignals"
      | "forwardOutput"
      | "maxQueuedCalls"
      | "maxArgs"
      | "maxOutputBacklogBytes"
      | "maxPendingOutputBytes"
    >
  > & { acceptShutdown: boolean | undefined };
  readonly #peers = new PeerTable();
  #capture: OutputCapture | undefined;
  /** Lines the capture dropped locally, kept once it is uninstalled. */
  #localDropped = 0;
  /** Connect mode's settings; undefined in spawn-only workers (no serviceId). */
  readonly #connect: ConnectSettings | undefined;
  #registered = false;
  /** A CURVE service's ZAP policy, removed when it stops. */
  #unregisterZap: (() => void) | undefined;
  #registering: Promise<void> | undefined;
  #channel: RouterChannel | undefined;
  #dispatcher: Dispatcher | undefined;
  #running = false;
  #stopping: Promise<void> | undefined;
  #resolveRun: (() => void) | undefined;
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  #parentWatch: NodeJS.Timeout | undefined;
  #orphanTimer: NodeJS.Timeout | undefined;
  /** Resolved in `run()`: the option, or true when spawned and false for a service. */
  #acceptShutdown = false;
  #shutdownRefusalLogged = false;
  /** Output bytes queued since the send queue was last seen empty (an upper bound of what waits). */
  #outputBacklogBytes = 0;
  /** Forwarded output is being dropped until the send queue drains. */
  #outputHeld = false;
  #outputDropped = 0;
  #outputUnreported = 0;
  readonly #stats: ChildWorkerStats = {
    callsReceived: 0,
    heartbeatsAnswered: 0,
    rejected: {},
    sendFailures: 0,
    linesForwarded: 0,
    linesDropped: 0,
    callsRefusedBusy: 0,
    callsRefusedArgs: 0,
  };

  constructor(serviceIdOrOptions?: string | ChildWorkerOptions) {
    const options = typeof serviceIdOrOptions === "string" ? { serviceId: serviceIdOrOptions } : serviceIdOrOptions ?? {};
    this.serviceId = options.serviceId;
    this.#options = {
      concurrency: options.concurrency ?? 64,
      shutdownGraceMs: options.shutdownGraceMs ?? 5000,
      exitAfterStopMs: options.exitAfterStopMs ?? 1000,
      orphanGraceMs: checkOrphanGrace(options.orphanGraceMs ?? 2000),
      handleSignals: options.handleSignals ?? true,
      forwardOutput: options.forwardOutput ?? true,
      acceptShutdown: options.acceptShutdown,
      maxQueuedCalls: checkCount(options.maxQueuedCalls ?? DISPATCHER_DEFAULTS.maxQueued, "maxQueuedCalls", 0),
      maxArgs: checkCount(options.maxArgs ?? DISPATCHER_DEFAULTS.maxArgs, "maxArgs", 0),
      maxOutputBacklogBytes: checkCount(options.maxOutputBacklogBytes ?? 8 * 1024 * 1024, "maxOutputBacklogBytes", 0),
      maxPendingOutputBytes: checkCount(options.maxPendingOutputBytes ?? 1024 * 1024, "maxPendingOutputBytes", 0),
    };
    this.#connect =
      options.serviceId === undefined
        ? undefined
        : {
            serviceId: options.serviceId,
            registry: options.registry ?? new FileRegistry({ dir: options.registryDir }),
            host: options.host ?? "127.0.0.1",
            curve: resolveServiceCurve(options.curve, options.host ?? "127.0.0.1", options.insecure ?? false),
          };
  }

  /** The names a parent may call. */
  listFunctions(): string[] {
    return callableNames(this, ChildWorker.prototype);
  }

  get stats(): Readonly<ChildWorkerStats> {
    const stats = this.#stats;
    stats.linesDropped = this.#outputDropped + (this.#capture?.linesDropped ?? this.#localDropped);
    stats.callsRefusedBusy = this.#dispatcher?.refusedBusy ?? 0;
    stats.callsRefusedArgs = this.#dispatcher?.refusedArgs ?? 0;
    return stats;
  }

  /**
   * Spawn mode (`COMLINK_ZMQ_PORT` set): connects to the parent. Connect mode (a serviceId):
   * binds 127.0.0.1 on a port the OS picks, then registers that port. Serves calls until a
   * `shutdown` message, SIGTERM/SIGINT, the parent's death (spawn mode) or `stop()`, then
   * unregisters. Exits the process with code 1 and a FATAL line when the port is invalid;
   * rejects with ServiceAlreadyRunningError when another live process holds the service id.
   */
  async run(): Promise<void> {
    if (this.#running) throw new Error("ChildWorker.run() called twice");
    const portText = process.env[ENV_PORT];
    let endpoint: string | undefined;
    if (portText !== undefined) {
      const port = Number(portText);
      if (!/^\d+$/.test(portText.trim()) || !Number.isInteger(port) || port < MIN_PORT || port > MAX_PORT) {
        fatal(`invalid ${ENV_PORT} '${portText}': expected an integer port between ${MIN_PORT} and ${MAX_PORT}`);
      }
      const private_ = process.env[ENV_ENDPOINT];
      // The parent's private channel when it offers one (an OS-protected ipc path), else v4's TCP port.
      endpoint = private_ !== undefined && private_.startsWith("ipc://") ? private_ : `tcp://127.0.0.1:${port}`;
    } else if (this.serviceId === undefined) {
      fatal(`Need ${ENV_PORT} env (spawn mode) or a serviceId (connect mode)`);
    }

    this.#running = true;
    this.#acceptShutdown = this.#options.acceptShutdown ?? endpoint !== undefined;
    const handlers = new Map<string, Handler>();
    for (const name of this.listFunctions()) {
      const method = (this as unknown as Record<string, Handler>)[name]!;
      handlers.set(name, method.bind(this));
    }
    this.#dispatcher = new Dispatcher(handlers, {
      concurrency: this.#options.concurrency,
      maxQueued: this.#options.maxQueuedCalls,
      maxArgs: this.#options.maxArgs,
    });
    const curve = endpoint === undefined ? this.#connect?.curve : undefined;
    let zapDomain: string | undefined;
    if (curve !== undefined) {
      zapDomain = `multifrost-service-${nextMessageId()}`;
      this.#unregisterZap = zapHandler.register(zapDomain, curveServerPolicy(curve.authorizedKeys));
    }
    const channel = new RouterChannel(
      (peer) => {
        this.#stats.sendFailures++;
        if (peer !== undefined) this.#peers.forget(peer); // unreachable: stop forwarding to it
      },
      curve === undefined ? {} : { curveServerSecretKey: curve.secretKey, zapDomain },
    );
    this.#channel = channel;
    const finished = new Promise<void>((resolve) => (this.#resolveRun = resolve));

    // Before registering: a SIGTERM right after the entry appears must stop us cleanly.
    this.#installSignalHandlers();
    if (endpoint !== undefined) {
      this.#watchParentConnection(channel);
      channel.connect(endpoint);
      this.#watchParent();
    } else {
      this.#registering = this.#bindAndRegister(channel, this.#connect!);
      await this.#registering;
    }
    channel.onPayload(
      (payload, frames) => this.#onFrame(payload, frames),
      () => this.#reject("short-envelope"),
      (error) => {
        process.stderr.write(`multifrost child: receive loop failed: ${String(error)}\n`);
        void this.#stop("api");
      },
    );
    if (this.#options.forwardOutput) {
      this.#capture = new OutputCapture((stream, line) => this.#forwardLine(stream, line), {
        maxPendingBytes: this.#options.maxPendingOutputBytes,
      });
      this.#capture.install();
    }
    await finished;
  }

  /** Connect mode: bind first, then publish the real port (no find-a-free-port race). */
  async #bindAndRegister(channel: RouterChannel, connect: ConnectSettings): Promise<void> {
    try {
      const port = await channel.bind(connect.host, 0);
      await connect.registry.register(connect.serviceId, port, process.pid, connect.curve && { publicKey: connect.curve.publicKey });
      this.#registered = true;
    } catch (error) {
      channel.close();
      this.#unregisterZap?.();
      this.#unregisterZap = undefined;
      this.#running = false;
      throw error;
    }
  }

  /** Stops serving: lets running calls finish (bounded), flushes replies, closes the socket. */
  stop(): Promise<void> {
    return this.#stop("api");
  }

  /** Sends a call's reply back along the request's frames. */
  readonly #reply = (frames: Buffer[], reply: Buffer): void => {
    this.#channel?.reply(frames, reply);
  };

  #onFrame(payload: Buffer, frames: Buffer[]): void {
    const message = parseFrame(payload);
    if (message instanceof RejectedFrame) {
      this.#reject(message.reason);
      // A v4 call we can answer (right app, readable id) but cannot run gets an error reply;
      // anything else, including a wrong app id (spec §9.2), is dropped silently.
      if (message.id !== undefined && INVALID_CALL_REASONS.has(message.reason)) {
        this.#channel?.reply(frames, encodeMessage(createError(message.id, invalidCallText(message.reason))));
      }
      return;
    }
    switch (message.type) {
      case "call": {
        if (message.namespace !== this.namespace) {
          this.#reject("namespace-mismatch");
          return;
        }
        // Only a caller (or a pinger, below) gets this process's output, not whoever connects.
        this.#peers.heard(frames);
        this.#stats.callsReceived++;
        if (this.#stopping) {
          this.#channel?.reply(frames, encodeMessage(createError(message.id, "WorkerStoppingError: worker is shutting down")));
          return;
        }
        this.#dispatcher!.dispatch(message, frames, this.#reply);
        return;
      }
      case "heartbeat":
        // Answered here, outside the call queue: a busy worker is not a dead one.
        this.#peers.heard(frames);
        this.#stats.heartbeatsAnswered++;
        this.#channel?.reply(frames, encodeMessage(createHeartbeatReply(message as HeartbeatMessage)));
        return;
      case "shutdown":
        if (this.#acceptShutdown) {
          void this.#stop("shutdown-message");
          return;
        }
        this.#reject("shutdown-refused");
        if (!this.#shutdownRefusalLogged) {
          this.#shutdownRefusalLogged = true;
          this.#printLocally(
            "stderr",
            `multifrost child: ignored a 'shutdown' message${this.serviceId === undefined ? "" : ` for service '${this.serviceId}'`} (acceptShutdown is off; further ones are only counted)\n`,
          );
        }
        return;
      default:
        return; // responses, output and unknown types are not for a child
    }
  }

  /**
   * Sends one printed line to every parent that called or pinged; false when there is none yet
   * (the line is then printed here). A line the parents cannot take fast enough is dropped.
   */
  #forwardLine(stream: "stdout" | "stderr", line: string): boolean {
    const channel = this.#channel;
    if (channel === undefined || channel.closed || this.#peers.size === 0) return false;
    if (this.#outputHeld) {
      this.#outputDropped++;
      this.#outputUnreported++;
      return true;
    }
    if (channel.sendBacklog === 0) this.#outputBacklogBytes = 0;
    const payload = encodeMessage(createOutput(nextMessageId(), stream, line));
    // Each queued message also costs its frame array and Buffer objects: about 200 bytes more.
    const bytes = (payload.length + 200) * this.#peers.size;
    if (this.#outputBacklogBytes + bytes > this.#options.maxOutputBacklogBytes && channel.sendBacklog > 0) {
      this.#holdOutput(channel);
      this.#outputDropped++;
      this.#outputUnreported++;
      return true;
    }
    this.#outputBacklogBytes += bytes;
    this.#sendOutput(channel, payload);
    return true;
  }

  #sendOutput(channel: RouterChannel, payload: Buffer): void {
    for (const [peer, envelope] of this.#peers.entries()) channel.send(envelope, payload, peer);
    this.#stats.linesForwarded++;
  }

  /** Drops forwarded lines until the send queue has drained, then says how many were lost. */
  #holdOutput(channel: RouterChannel): void {
    this.#outputHeld = true;
    void channel.drained().then(() => {
      this.#outputHeld = false;
      this.#outputBacklogBytes = 0;
      const lost = this.#outputUnreported;
      this.#outputUnreported = 0;
      if (lost === 0 || channel.closed || this.#peers.size === 0) return;
      const text = `[multifrost] ${lost} output line${lost === 1 ? "" : "s"} dropped: the parents did not read them fast enough`;
      this.#sendOutput(channel, encodeMessage(createOutput(nextMessageId(), "stderr", text)));
    });
  }

  /** Prints on this process's own stream, never forwarded. */
  #printLocally(stream: "stdout" | "stderr", text: string): void {
    if (this.#capture) this.#capture.printLocally(stream, text);
    else (stream === "stdout" ? process.stdout : process.stderr).write(text);
  }

  #reject(reason: keyof ChildWorkerStats["rejected"]): void {
    this.#stats.rejected[reason] = (this.#stats.rejected[reason] ?? 0) + 1;
  }

  #stop(reason: StopReason): Promise<void> {
    this.#stopping ??= this.#shutdown(reason);
    return this.#stopping;
  }

  async #shutdown(reason: StopReason): Promise<void> {
    // Signal handlers stay until the end: removing ours while a SIGTERM is being dispatched
    // would leave signal-exit (loaded by proper-lockfile) alone, and it re-raises the signal.
    if (this.#parentWatch) clearInterval(this.#parentWatch);
    clearTimeout(this.#orphanTimer);
    const channel = this.#channel;
    if (this.#dispatcher && reason !== "parent-gone") {
      await withTimeout(this.#dispatcher.idle(), this.#options.shutdownGraceMs);
    }
    // Back to the real streams (partial lines are flushed to the parents while we still can).
    this.#capture?.uninstall();
    this.#localDropped = this.#capture?.linesDropped ?? this.#localDropped;
    this.#capture = undefined;
    if (channel) {
      await withTimeout(channel.drained(), 1000);
      channel.close();
    }
    this.#unregisterZap?.();
    this.#unregisterZap = undefined;
    // A stop during registration waits for it, so the entry it writes is removed too.
    await this.#registering?.catch(() => undefined);
    const connect = this.#connect;
    if (this.#registered && connect) {
      this.#registered = false;
      await connect.registry.unregister(connect.serviceId).catch((error: unknown) => {
        process.stderr.write(`multifrost child: could not unregister '${connect.serviceId}': ${String(error)}\n`);
      });
    }
    this.#running = false;
    this.#removeSignalHandlers();
    this.#resolveRun?.();
    const exitAfter = this.#options.exitAfterStopMs;
    if (reason !== "api" && exitAfter !== false) {
      setTimeout(() => process.exit(0), exitAfter).unref();
    }
  }

  #installSignalHandlers(): void {
    if (!this.#options.handleSignals) return;
    // No process.exit() right after closing: the socket's linger must flush the last replies.
    // The process then exits by itself, or by the exitAfterStopMs fallback in #shutdown.
    this.#signalHandler = () => {
      void this.#stop("signal");
    };
    process.on("SIGTERM", this.#signalHandler);
    process.on("SIGINT", this.#signalHandler);
  }

  #removeSignalHandlers(): void {
    if (!this.#signalHandler) return;
    process.off("SIGTERM", this.#signalHandler);
    process.off("SIGINT", this.#signalHandler);
    this.#signalHandler = undefined;
  }

  /** In spawn mode, a parent that died without stopping us must not leave us running. */
  #watchParent(): void {
    const parentPid = process.ppid;
    this.#parentWatch = setInterval(() => {
      if (process.ppid !== parentPid) void this.#stop("parent-gone");
    }, PARENT_WATCH_MS);
    this.#parentWatch.unref();
  }

  /**
   * In spawn mode, a parent behind a wrapper can die without changing our ppid; its connection
   * dropping tells. Only a connection that once was counts, so a slow parent is not mistaken for
   * a dead one.
   */
  #watchParentConnection(channel: RouterChannel): void {
    const graceMs = this.#options.orphanGraceMs;
    if (graceMs === false) return;
    let connected = false;
    channel.watchConnection(
      () => {
        connected = true;
        clearTimeout(this.#orphanTimer);
        this.#orphanTimer = undefined;
      },
      () => {
        if (!connected || this.#orphanTimer !== undefined || this.#stopping) return;
        this.#orphanTimer = setTimeout(() => void this.#stop("parent-gone"), graceMs);
        this.#orphanTimer.unref();
      },
    );
  }
}

function checkCount(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function checkOrphanGrace(value: number | false): number | false {
  if (value !== false && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
    throw new InvalidArgumentError(`orphanGraceMs must be a non-negative number of milliseconds or false, got ${String(value)}`);
  }
  return value;
}

/** Calls refused for a malformed field; the rest of the rejected frames are dropped silently. */
const INVALID_CALL_REASONS: ReadonlySet<RejectReason> = new Set(["missing-function", "bad-args", "bad-namespace"]);

function invalidCallText(reason: RejectReason): string {
  switch (reason) {
    case "missing-function":
      return "InvalidMessageError: Message missing 'function' field";
    case "bad-args":
      return "InvalidMessageError: 'args' must be an array";
    case "bad-namespace":
      return "InvalidMessageError: 'namespace' must be a string";
    default:
      return `InvalidMessageError: invalid call (${reason})`;
  }
}

function fatal(message: string): never {
  process.stderr.write(`FATAL: ${message}\n`);
  process.exit(1);
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
