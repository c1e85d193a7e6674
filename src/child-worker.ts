import { callableNames } from "./actors/callable-names.js";
import { Dispatcher, type Handler } from "./actors/dispatcher.js";
import { OutputCapture } from "./actors/output-capture.js";
import { PeerTable } from "./actors/peer-table.js";
import { curveServerPolicy } from "./actors/curve.js";
import { zapHandler } from "./actors/zap.js";
import { RouterChannel } from "./actors/zmq-channel.js";
import { INVALID_CALL_REASONS, invalidCallText } from "./child/invalid-call.js";
import {
  connectRegistry,
  resolveChildOptions,
  resolveConnectSettings,
  type ChildWorkerOptions,
  type ConnectSettings,
  type ResolvedChildOptions,
} from "./child/options.js";
import { ChildLog } from "./child/child-log.js";
import { cancelCall, currentCall, releaseCall, type CallContext } from "./child/call-context.js";
import { callInvoker, loadServerSpan } from "./observability/handle-tracing.js";
import { OutputForwarder } from "./child/output-forwarder.js";
import { ParentWatch } from "./child/parent-watch.js";
import { spawnEndpoint } from "./child/spawn-endpoint.js";
import {
  DEFAULT_NAMESPACE,
  RejectedFrame,
  createError,
  createHeartbeatReply,
  nextMessageId,
  encodeMessage,
  parseFrame,
  type HeartbeatMessage,
  type RejectReason,
} from "./wire/index.js";

import type { RegistryBackend } from "./registry/index.js";

export type { ChildWorkerOptions } from "./child/options.js";

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
  /** `cancel` messages that reached a waiting or running call (docs/wire.md, Cancellation). */
  callsCancelled: number;
  /** Of those, calls cancelled while waiting for a slot: they never ran. */
  callsCancelledQueued: number;
  /** `chunk` messages sent by streaming handlers (docs/wire.md, Streaming). */
  chunksSent: number;
}

type StopReason = "shutdown-message" | "signal" | "parent-gone" | "api";

/**
 * Base class for workers written in TypeScript/JavaScript. Subclass it, add methods, call
 * `run()`. Only the methods your subclasses define are callable (see `listFunctions()`).
 */
export abstract class ChildWorker {
  /** The namespace this worker answers; calls for another namespace are ignored (spec §9.3). */
  protected namespace: string = DEFAULT_NAMESPACE;
  protected readonly serviceId: string | undefined;

  readonly #options: ResolvedChildOptions;
  readonly #peers = new PeerTable();
  #capture: OutputCapture | undefined;
  /** Lines the capture dropped locally, kept once it is uninstalled. */
  #localDropped = 0;
  /** Connect mode's settings; undefined in spawn-only workers (no serviceId). */
  readonly #connect: ConnectSettings | undefined;
  #registered = false;
  /** Connect mode: the registry this service is registered in (resolved in `run()`). */
  #registry: RegistryBackend | undefined;
  /** A CURVE service's ZAP policy, removed when it stops. */
  #unregisterZap: (() => void) | undefined;
  #registering: Promise<void> | undefined;
  #channel: RouterChannel | undefined;
  #dispatcher: Dispatcher | undefined;
  #running = false;
  #stopping: Promise<void> | undefined;
  #resolveRun: (() => void) | undefined;
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  /** Spawn mode: notices a parent that died without stopping us. */
  #parentWatch: ParentWatch | undefined;
  #forwarder: OutputForwarder | undefined;
  /** Resolved in `run()`: the option, or true when spawned and false for a service. */
  #acceptShutdown = false;
  #shutdownRefusalLogged = false;
  readonly #log: ChildLog | undefined;
  readonly #stats: ChildWorkerStats = {
    callsReceived: 0,
    heartbeatsAnswered: 0,
    rejected: {},
    sendFailures: 0,
    linesForwarded: 0,
    linesDropped: 0,
    callsRefusedBusy: 0,
    callsRefusedArgs: 0,
    callsCancelled: 0,
    callsCancelledQueued: 0,
    chunksSent: 0,
  };

  constructor(serviceIdOrOptions?: string | ChildWorkerOptions) {
    const options = typeof serviceIdOrOptions === "string" ? { serviceId: serviceIdOrOptions } : serviceIdOrOptions ?? {};
    this.serviceId = options.serviceId;
    this.#options = resolveChildOptions(options);
    this.#connect = resolveConnectSettings(options);
    this.#log = ChildLog.create(options.logger, options.logLevel, options.serviceId ?? this.constructor.name);
  }

  /** The names a parent may call. */
  listFunctions(): string[] {
    return callableNames(this, ChildWorker.prototype);
  }

  /**
   * The call the running handler serves (id, function, traceparent, deadline, signal…): each
   * async handler sees its own across awaits. Throws outside a handler (see `currentCall()`).
   */
  protected get call(): CallContext {
    const call = currentCall();
    if (call === undefined) throw new Error("this.call is only available while a handler runs (use currentCall() to test for one)");
    return call;
  }

  get stats(): Readonly<ChildWorkerStats> {
    const stats = this.#stats;
    stats.linesDropped = (this.#forwarder?.dropped ?? 0) + (this.#capture?.linesDropped ?? this.#localDropped);
    stats.callsRefusedBusy = this.#dispatcher?.refusedBusy ?? 0;
    stats.callsRefusedArgs = this.#dispatcher?.refusedArgs ?? 0;
    stats.callsCancelledQueued = this.#dispatcher?.cancelledQueued ?? 0;
    stats.chunksSent = this.#dispatcher?.chunksSent ?? 0;
    return stats;
  }

  /**
   * Spawn mode (`COMLINK_ZMQ_PORT` set): connects to the parent. Connect mode (a serviceId):
   * binds `host` (127.0.0.1) on a port the OS picks, then registers that port and its `advertise`. Serves calls until a
   * `shutdown` message, SIGTERM/SIGINT, the parent's death (spawn mode) or `stop()`, then
   * unregisters. Exits the process with code 1 and a FATAL line when the port is invalid;
   * rejects with ServiceAlreadyRunningError when another live process holds the service id.
   */
  async run(): Promise<void> {
    if (this.#running) throw new Error("ChildWorker.run() called twice");
    // Only with a tracer provider registered is there something to load (an await); else nothing.
    const loading = loadServerSpan();
    const inSpan = loading === undefined ? undefined : await loading;
    const endpoint = spawnEndpoint(this.serviceId);

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
      onBusy: this.#log && ((running, waiting) => this.#log?.busy(running, waiting)),
      invoke: callInvoker(inSpan),
      onCancel: cancelCall,
      onEnd: releaseCall,
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
      const watch = new ParentWatch(() => void this.#stop("parent-gone"), this.#options.orphanGraceMs);
      this.#parentWatch = watch;
      watch.watchConnection(channel);
      channel.connect(endpoint);
      watch.watchPpid();
      this.#log?.started("spawn", { endpoint });
    } else {
      this.#registering = this.#bindAndRegister(channel, this.#connect!);
      await this.#registering;
      this.#log?.started("connect", { service: this.#connect!.serviceId });
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
      const forwarder = new OutputForwarder(channel, this.#peers, this.#stats, this.#options.maxOutputBacklogBytes);
      this.#forwarder = forwarder;
      this.#capture = new OutputCapture((stream, line) => forwarder.forwardLine(stream, line), {
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
      this.#registry = await connectRegistry(connect);
      await this.#registry.register(connect.serviceId, port, process.pid, {
        ...(connect.curve === undefined ? {} : { publicKey: connect.curve.publicKey }),
        ...(connect.advertise === undefined ? {} : { host: connect.advertise }),
      });
      this.#registered = true;
    } catch (error) {
      this.#log?.registryError("register", connect.serviceId, error);
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
      case "cancel":
        if (this.#dispatcher?.cancel(message.id)) this.#stats.callsCancelled++;
        return;
      case "credit":
        this.#dispatcher?.credit(message.id, message.n);
        return;
      case "shutdown":
        if (this.#acceptShutdown) {
          void this.#stop("shutdown-message");
          return;
        }
        this.#reject("shutdown-refused");
        this.#log?.shutdownRefused();
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
    this.#parentWatch?.stop();
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
    if (this.#registered && connect && this.#registry) {
      this.#registered = false;
      await this.#registry.unregister(connect.serviceId).catch((error: unknown) => {
        this.#log?.registryError("unregister", connect.serviceId, error);
        process.stderr.write(`multifrost child: could not unregister '${connect.serviceId}': ${String(error)}\n`);
      });
    }
    this.#running = false;
    this.#removeSignalHandlers();
    this.#log?.stopped(reason);
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
