import { callableNames } from "./actors/callable-names.js";
import { Dispatcher, type Handler } from "./actors/dispatcher.js";
import { OutputCapture } from "./actors/output-capture.js";
import { PeerTable } from "./actors/peer-table.js";
import { RouterChannel } from "./actors/zmq-channel.js";
import { InvalidArgumentError } from "./errors.js";
import { FileRegistry, type RegistryBackend } from "./registry/index.js";
import {
  DEFAULT_NAMESPACE,
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
  /** Connect mode: the interface to bind. Default 127.0.0.1. */
  host?: string;
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
}

export interface ChildWorkerStats {
  callsReceived: number;
  heartbeatsAnswered: number;
  /** Frames dropped or refused, by reason. */
  rejected: Partial<Record<RejectReason | "namespace-mismatch" | "short-envelope", number>>;
  sendFailures: number;
  /** Lines sent to parents as stdout/stderr messages (each counted once, whatever the number of parents). */
  linesForwarded: number;
}

/** Connect mode: the name to register, where, and the interface to bind. */
interface ConnectSettings {
  serviceId: string;
  registry: RegistryBackend;
  host: string;
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
    Pick<ChildWorkerOptions, "concurrency" | "shutdownGraceMs" | "exitAfterStopMs" | "orphanGraceMs" | "handleSignals" | "forwardOutput">
  >;
  readonly #peers = new PeerTable();
  #capture: OutputCapture | undefined;
  /** Connect mode's settings; undefined in spawn-only workers (no serviceId). */
  readonly #connect: ConnectSettings | undefined;
  #registered = false;
  #registering: Promise<void> | undefined;
  #channel: RouterChannel | undefined;
  #dispatcher: Dispatcher | undefined;
  #running = false;
  #stopping: Promise<void> | undefined;
  #resolveRun: (() => void) | undefined;
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  #parentWatch: NodeJS.Timeout | undefined;
  #orphanTimer: NodeJS.Timeout | undefined;
  readonly #stats: ChildWorkerStats = { callsReceived: 0, heartbeatsAnswered: 0, rejected: {}, sendFailures: 0, linesForwarded: 0 };

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
    };
    this.#connect =
      options.serviceId === undefined
        ? undefined
        : {
            serviceId: options.serviceId,
            registry: options.registry ?? new FileRegistry({ dir: options.registryDir }),
            host: options.host ?? "127.0.0.1",
          };
  }

  /** The names a parent may call. */
  listFunctions(): string[] {
    return callableNames(this, ChildWorker.prototype);
  }

  get stats(): Readonly<ChildWorkerStats> {
    return this.#stats;
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
      endpoint = `tcp://127.0.0.1:${port}`;
    } else if (this.serviceId === undefined) {
      fatal(`Need ${ENV_PORT} env (spawn mode) or a serviceId (connect mode)`);
    }

    this.#running = true;
    const handlers = new Map<string, Handler>();
    for (const name of this.listFunctions()) {
      const method = (this as unknown as Record<string, Handler>)[name]!;
      handlers.set(name, method.bind(this));
    }
    this.#dispatcher = new Dispatcher(handlers, { concurrency: this.#options.concurrency });
    const channel = new RouterChannel((peer) => {
      this.#stats.sendFailures++;
      if (peer !== undefined) this.#peers.forget(peer); // unreachable: stop forwarding to it
    });
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
      this.#capture = new OutputCapture((stream, line) => this.#forwardLine(stream, line));
      this.#capture.install();
    }
    await finished;
  }

  /** Connect mode: bind first, then publish the real port (no find-a-free-port race). */
  async #bindAndRegister(channel: RouterChannel, connect: ConnectSettings): Promise<void> {
    try {
      const port = await channel.bind(connect.host, 0);
      await connect.registry.register(connect.serviceId, port);
      this.#registered = true;
    } catch (error) {
      channel.close();
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
    this.#peers.heard(frames);
    switch (message.type) {
      case "call": {
        if (message.namespace !== this.namespace) {
          this.#reject("namespace-mismatch");
          return;
        }
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
        this.#stats.heartbeatsAnswered++;
        this.#channel?.reply(frames, encodeMessage(createHeartbeatReply(message as HeartbeatMessage)));
        return;
      case "shutdown":
        void this.#stop("shutdown-message");
        return;
      default:
        return; // responses, output and unknown types are not for a child
    }
  }

  /** Sends one printed line to every parent heard from; false when there is none yet. */
  #forwardLine(stream: "stdout" | "stderr", line: string): boolean {
    const channel = this.#channel;
    if (channel === undefined || channel.closed || this.#peers.size === 0) return false;
    const payload = encodeMessage(createOutput(nextMessageId(), stream, line));
    for (const [peer, envelope] of this.#peers.entries()) channel.send(envelope, payload, peer);
    this.#stats.linesForwarded++;
    return true;
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
    this.#capture = undefined;
    if (channel) {
      await withTimeout(channel.drained(), 1000);
      channel.close();
    }
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
