import { CallTable, type PendingCall } from "../actors/call-table.js";
import type { DealerChannel } from "../actors/zmq-channel.js";
import {
  CallTimeoutError,
  CircuitOpenError,
  EncodeError,
  InvalidArgumentError,
  ProtocolError,
  RemoteCallError,
  SendFailedError,
  WorkerUnavailableError,
} from "../errors.js";
import { LIVE_STATES as LIVE, type ConnectionState } from "../machines/connection.js";
import {
  DEFAULT_NAMESPACE,
  RejectedFrame,
  createCall,
  createCancel,
  createCredit,
  createHeartbeat,
  encodeMessage,
  nextMessageId,
  parseFrame,
  parseRemoteError,
  prepareForWire,
} from "../wire/index.js";
import { CallMetrics, DisabledCallMetrics } from "../observability/call-metrics.js";
import { CallTracing } from "../observability/call-tracing.js";
import type { Metadata } from "../wire/messages.js";
import type { CallClientHost, CallClientStats } from "./call-client-host.js";
import { abortErrorFor, bindSignal, isAbortSignal } from "./call-cancel.js";
import { CircuitAccounting } from "./circuit-accounting.js";
import type { CallOptions } from "./call-proxy.js";
import { CallStream, streamLimits, type StreamOptions, type StreamSink } from "./call-stream.js";
import { checkRetries, isValidTimeout, type ResolvedOptions } from "./resolve-options.js";
import { RestartBuffer } from "./restart-buffer.js";
import { GATES, Gate } from "./call-gates.js";

/**
 * The parent's calls to one worker (DESIGN §3, §4): the pending-call table, the buffer of calls
 * waiting for the worker to be (back) up and idempotent retries (RestartBuffer), streams, and
 * what the circuit breaker counts (CircuitAccounting). It sends through whichever channel is
 * attached.
 */

export type { CallClientHost, CallClientStats } from "./call-client-host.js";
export class CallClient {
  readonly #host: CallClientHost;
  readonly #settings: ResolvedOptions;
  readonly #namespace: string;
  readonly #clientName: string | undefined;
  readonly #calls: CallTable;
  readonly #stats: CallClientStats = { callsSent: 0, unmatchedReplies: 0, rejected: {}, retries: 0, cancelsSent: 0 };
  readonly #circuit: CircuitAccounting;
  readonly #heartbeatIds = new Set<string>();
  readonly #buffer: RestartBuffer;
  readonly #streams = new Map<string, StreamSink>();
  /** Calls by outcome and their latency (always on, cheap), also recorded through OpenTelemetry. */
  readonly metrics: CallMetrics;
  /** Client spans and the `multifrost:call` channel (nothing per call when neither is on). */
  readonly #tracing: CallTracing;
  #gate: Gate = Gate.Closed;
  #state: ConnectionState = "idle";
  #channel: DealerChannel | undefined;
  #lastRttMs: number | undefined;
  /** When a call last settled (performance.now()): a worker that just answered was busy until then. */
  #lastSettledAt = -Infinity;

  constructor(host: CallClientHost, settings: ResolvedOptions, namespace: string | undefined, clientName: string | undefined) {
    this.#host = host;
    this.#settings = settings;
    this.#namespace = namespace ?? DEFAULT_NAMESPACE;
    this.#clientName = clientName;
    this.#circuit = new CircuitAccounting(settings.circuit, (event) => host.tell(event));
    this.#calls = new CallTable((call) => this.#timeoutError(call));
    this.#buffer = new RestartBuffer(this.#calls, this.#heartbeatIds, this.#stats);
    this.metrics = settings.metrics ? new CallMetrics(host.name) : new DisabledCallMetrics(host.name);
    this.#tracing = new CallTracing(host.name);
  }

  get stats(): Readonly<CallClientStats> {
    return this.#stats;
  }

  /** Calls sent (or waiting to be sent) and not yet answered, heartbeats included. */
  get pending(): number {
    return this.#calls.size;
  }

  /** Calls waiting for the worker to come (back) up. */
  get buffered(): number {
    this.#buffer.prune();
    return this.#buffer.length;
  }

  get lastHeartbeatRttMs(): number | undefined {
    return this.#lastRttMs;
  }

  /**
   * Whether calls (not heartbeats) are in flight within their deadlines, or one settled within
   * `withinMs`: a v4 child answers heartbeats only between calls, so a miss then means busy.
   */
  busy(withinMs: number): boolean {
    return this.#calls.size > this.#heartbeatIds.size || performance.now() - this.#lastSettledAt < withinMs;
  }

  /** The channel new calls go through (undefined while there is none). */
  attach(channel: DealerChannel | undefined): void {
    this.#channel = channel;
  }

  /** For the channel's send-failure callback. */
  sendFailed(id: string | undefined, error: unknown): void {
    if (id === undefined) return;
    const call = this.#calls.take(id);
    if (call === undefined) return;
    if (!this.#heartbeatIds.has(id)) {
      this.metrics.failed(call.functionName, "transport");
      this.#circuit.failed("send failed");
    }
    call.reject(new SendFailedError(`Failed to send to worker '${this.#host.name}': ${String(error)}`, { cause: error }));
  }

  // ── Calls ───────────────────────────────────────────────────────────────────────────────────

  call(
    functionName: string,
    args: unknown[],
    timeout: number | undefined,
    namespace: string | undefined,
    clientName: string | undefined,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    const id = nextMessageId();
    if (!this.#tracing.on) return this.#call(id, functionName, args, timeout, namespace, clientName, options, undefined);
    return this.#tracing.trace(id, functionName, args, (metadata) => this.#call(id, functionName, args, timeout, namespace, clientName, options, metadata));
  }

  /** `worker.stream(…)`: a call whose values come as `chunk`s (call-stream.ts, which keeps its timeouts and signal); never retried. */
  stream(functionName: string, args: unknown[], options: StreamOptions | undefined): CallStream {
    const limits = streamLimits(options, this.#settings.defaultTimeoutMs);
    const start = (id: string, stream: { credit: number }, metadata: Metadata | undefined) =>
      this.#call(id, functionName, args, Infinity, options?.namespace, options?.clientName, { ...options, signal: undefined, idempotent: false, stream }, metadata);
    const sendCredit = (id: string, n: number) => this.#channel?.send(encodeMessage(createCredit(id, n)));
    const stop = (id: string, error: Error, timedOut: boolean) => this.#cancel(id, error, timedOut);
    return new CallStream(functionName, args, limits, { sinks: this.#streams, start, sendCredit, stop, tracing: this.#tracing, metrics: this.metrics }, options?.signal);
  }

  #call(id: string, functionName: string, args: unknown[], timeout: number | undefined, namespace: string | undefined, clientName: string | undefined,
    options: (CallOptions & { stream?: { credit: number } }) | undefined, metadata: Metadata | undefined): Promise<unknown> {
    const signal = options?.signal;
    if (signal !== undefined && !isAbortSignal(signal)) return Promise.reject(new InvalidArgumentError("signal must be an AbortSignal"));
    if (signal?.aborted) return Promise.reject(abortErrorFor(signal, functionName));
    const gate = this.#gate;
    if (gate === Gate.Closed) return Promise.reject(this.#host.notRunningError());
    if (gate === Gate.CircuitOpen || (gate === Gate.HalfOpen && this.#circuit.probing)) {
      this.metrics.failed(functionName, "circuit_open");
      return Promise.reject(this.#circuitOpenError());
    }
    if (typeof functionName !== "string" || functionName.length === 0) {
      return Promise.reject(new InvalidArgumentError("the function name must be a non-empty string"));
    }
    if (!Array.isArray(args)) return Promise.reject(new InvalidArgumentError("args must be an array"));
    const defaultTimeout = this.#settings.defaultTimeoutMs;
    const timeoutMs = timeout ?? defaultTimeout;
    if (timeoutMs !== defaultTimeout && !isValidTimeout(timeoutMs)) {
      return Promise.reject(new InvalidArgumentError(`timeout must be a positive number of ms or Infinity, got ${String(timeout)}`));
    }
    if (gate === Gate.Buffer && this.#buffer.length >= this.#settings.maxBufferedCalls) {
      this.#buffer.prune(); // calls that timed out while waiting no longer hold a place
      if (this.#buffer.length >= this.#settings.maxBufferedCalls) {
        this.metrics.failed(functionName, "unavailable");
        return Promise.reject(
          new WorkerUnavailableError(this.#host.name, `is ${this.#state} and ${this.#buffer.length} calls already wait for it (maxBufferedCalls)`),
        );
      }
    }
    if (this.#calls.size >= this.#settings.maxPendingCalls) {
      this.metrics.failed(functionName, "unavailable");
      return Promise.reject(
        new WorkerUnavailableError(this.#host.name, `has ${this.#calls.size} calls pending (maxPendingCalls ${this.#settings.maxPendingCalls})`),
      );
    }
    const ns = namespace ?? this.#namespace;
    const client = clientName ?? this.#clientName;
    let wireArgs: unknown[];
    let bytes: Buffer;
    let retries = 0;
    try {
      wireArgs = prepareForWire(args, "args") as unknown[];
      bytes = encodeMessage(createCall(id, functionName, wireArgs, ns, client, metadata, options?.stream));
      if (bytes.length > this.#settings.maxMessageSize) {
        throw new EncodeError("args", `the call is ${bytes.length} bytes, over maxMessageSize (${this.#settings.maxMessageSize})`);
      }
      if (options?.idempotent ?? this.#settings.idempotent) retries = options?.retries === undefined ? this.#settings.retries : checkRetries(options.retries);
    } catch (error) {
      return Promise.reject(error);
    }
    const promise = this.#calls.register(id, functionName, timeoutMs, ns);
    if (retries > 0) this.#buffer.keepRecipe(id, promise, { functionName, args: wireArgs, namespace: ns, clientName: client, metadata, retriesLeft: retries });
    if (gate === Gate.Buffer) this.#buffer.push(id, bytes);
    else {
      if (gate === Gate.HalfOpen) this.#circuit.probe(id, promise);
      this.#stats.callsSent++;
      this.#channel!.send(bytes, id);
    }
    return signal === undefined ? promise : bindSignal(signal, functionName, promise, (error) => this.#cancel(id, error));
  }

  /** A call's signal aborted, or a stream stopped here (`timedOut`: counted as a timeout): out of the table and the buffer, or `cancel` to the worker. */
  #cancel(id: string, error: Error, timedOut = false): void {
    const call = this.#calls.take(id);
    if (call === undefined) return; // settled already, or being retried under another id
    this.#settled();
    this.metrics.failed(call.functionName, timedOut ? "timeout" : "cancelled");
    if (timedOut) this.#circuit.failed(`'${call.functionName}' timed out`);
    if (!this.#buffer.drop(id)) this.#sendCancel(id);
    call.reject(error);
  }

  /** Tells the worker a sent call is no longer wanted (v4 peers ignore it: best effort). */
  #sendCancel(id: string): void {
    if (this.#channel === undefined) return;
    this.#stats.cancelsSent++;
    this.#channel.send(encodeMessage(createCancel(id)));
  }

  /** One heartbeat through the current channel, resolving with its round-trip time in ms. */
  async ping(timeoutMs: number): Promise<number> {
    const channel = this.#channel;
    if (channel === undefined) throw this.#host.notRunningError();
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
    this.#lastRttMs = rtt;
    this.#host.heartbeat?.();
    return rtt;
  }

  // ── Replies ─────────────────────────────────────────────────────────────────────────────────

  /** One frame from the worker. Only `response`/`error` settle calls, only `heartbeat` settles heartbeats. */
  receive(payload: Buffer): void {
    const message = parseFrame(payload);
    if (message instanceof RejectedFrame) {
      this.#stats.rejected[message.reason] = (this.#stats.rejected[message.reason] ?? 0) + 1;
      // A reply we can attribute fails its call now instead of leaving it to its timeout. Another
      // app's messages and unknown types (extensions, spec §33.2) are not replies: ignored.
      if (message.id !== undefined && message.reason !== "wrong-app" && message.reason !== "unknown-type" && !this.#heartbeatIds.has(message.id)) {
        const call = this.#calls.take(message.id);
        if (call !== undefined) {
          this.#settled();
          this.metrics.failed(call.functionName, "transport");
          this.#circuit.failed("invalid reply");
          call.reject(new ProtocolError(`Worker '${this.#host.name}' sent an invalid reply to '${call.functionName}' (${message.reason}${message.type ? `, type '${message.type}'` : ""})`));
        }
      }
      return;
    }
    switch (message.type) {
      case "response": {
        if (this.#heartbeatIds.has(message.id)) {
          this.#stats.unmatchedReplies++;
          return;
        }
        const call = this.#calls.take(message.id);
        if (call === undefined) {
          this.#stats.unmatchedReplies++;
          return;
        }
        this.#settled();
        // A stream's call is counted, not timed: it lasts as long as its consumer wants.
        this.metrics.answered(call.functionName, this.#streams.size !== 0 && this.#streams.has(message.id) ? undefined : call.startedAt, false);
        this.#circuit.succeeded();
        call.resolve(message.result);
        return;
      }
      case "error": {
        const call = this.#heartbeatIds.has(message.id) ? undefined : this.#calls.take(message.id);
        if (call === undefined) {
          this.#stats.unmatchedReplies++;
          return;
        }
        this.#settled();
        this.metrics.answered(call.functionName, this.#streams.size !== 0 && this.#streams.has(message.id) ? undefined : call.startedAt, true);
        this.#circuit.remoteError();
        const remote = parseRemoteError(message.error, message.stack);
        call.reject(new RemoteCallError(remote.type, remote.message, remote.stack, call.functionName));
        return;
      }
      case "chunk":
        this.#streams.get(message.id)?.chunk(message.seq, message.value);
        return;
      case "heartbeat":
        if (!this.#heartbeatIds.has(message.id) || !this.#calls.resolve(message.id, message)) this.#stats.unmatchedReplies++;
        return;
      case "stdout":
      case "stderr":
        this.#host.output(message.type, message.output);
        return;
      default:
        return; // calls and shutdowns are not for a parent
    }
  }

  #settled(): void {
    this.#lastSettledAt = performance.now();
  }


  // ── Connection changes ──────────────────────────────────────────────────────────────────────

  /** The connection machine moved: calls are now sent, buffered, refused… */
  stateChanged(from: ConnectionState, to: ConnectionState): void {
    this.#state = to;
    this.#gate = GATES[to];
    const cameUp = LIVE.has(to) && !LIVE.has(from);
    this.#circuit.stateChanged(from, to, cameUp);
    if (cameUp) {
      this.#buffer.flush(this.#channel);
    } else if (to === "failed" || to === "stopped") {
      this.#buffer.clear();
      this.#calls.rejectAll(() => this.#host.notRunningError());
    }
  }

  /**
   * The connection is gone (the process exited, the socket dropped, a restart). Calls the channel
   * had not handed to zeromq yet never reached the worker: they wait for the next connection.
   * Idempotent calls with retries left wait too (under a new id, with what is left of their
   * timeout); every other call in flight fails now with `error`.
   */
  connectionLost(lost: DealerChannel | undefined, error: Error): void {
    const channel = lost ?? this.#channel;
    this.rescueUnsent(channel);
    if (this.#channel === channel) this.#channel = undefined;
    this.#buffer.cutOff(error, (call) => {
      if (!this.#heartbeatIds.has(call.id)) this.metrics.failed(call.functionName, "transport");
    });
  }

  /**
   * Moves the calls `channel` (default: the current one) has not handed to zeromq yet to the
   * front of the buffer: they never reached the worker and will go to the next connection.
   */
  rescueUnsent(channel: DealerChannel | undefined = this.#channel): void {
    this.#buffer.rescueUnsent(channel);
  }

  #circuitOpenError(): CircuitOpenError {
    const reason = this.#state === "half-open" ? "half-open: a probe call is in flight" : this.#host.stateReason();
    return new CircuitOpenError(this.#host.name, reason);
  }

  #timeoutError(call: PendingCall): Error {
    if (this.#heartbeatIds.has(call.id)) return new CallTimeoutError(call.functionName, call.timeoutMs);
    this.metrics.failed(call.functionName, "timeout");
    if (!this.#buffer.isBuffered(call.id)) this.#sendCancel(call.id);
    this.#circuit.failed(`'${call.functionName}' timed out`);
    // A worker in another namespace ignores the call silently: say so when the namespace is not the default.
    const hint = call.namespace === DEFAULT_NAMESPACE ? undefined : `namespace '${call.namespace}': a worker in another namespace ignores the call`;
    return new CallTimeoutError(call.functionName, this.#buffer.requestedTimeout(call), hint);
  }
}
