/**
 * Streamed calls (docs/api.md, Streaming; docs/wire.md, Streaming): `worker.stream(name, args)`
 * and `handle.stream.<fn>(...args)` return an AsyncIterable of the values the worker yields.
 * The call goes out as a normal `call` carrying `stream: {credit}`; the worker answers with
 * `chunk` messages (the call's id, `seq` 0, 1, 2…) and ends with the usual `response` (result
 * null) or `error`. The parent keeps at most `credit` chunks buffered: it grants more with a
 * `credit` message as the consumer takes them.
 *
 * The stream stops here — buffered values dropped, the call cancelled (`cancel`) — when the
 * consumer breaks out of its `for await` (the iterator's `return()`), the caller's `signal`
 * aborts, the idle timeout passes (`timeout`: each wait for the next chunk) or the total one
 * (`totalTimeout`: the whole stream). The CallClient counts it as a call (`stop` below: a timeout
 * feeds the circuit breaker, a break or abort is a cancel and does not); the iterator adds the
 * chunks and, when tracing is on, ends the stream's span. Nothing here touches a socket.
 */
import { CallTimeoutError, InvalidArgumentError, ProtocolError } from "../errors.js";
import type { CallMetrics } from "../observability/call-metrics.js";
import type { CallTracing, StreamTrace } from "../observability/call-tracing.js";
import { nextMessageId } from "../wire/index.js";
import type { Metadata } from "../wire/messages.js";
import { AbortError, abortErrorFor, isAbortSignal } from "./call-cancel.js";
import { LOCAL_PROXY_NAMES, type CallOptions } from "./call-proxy.js";
import { checkTimeout } from "./resolve-options.js";

/** A stream's options: a call's, plus the bound on the whole stream. */
export interface StreamOptions extends CallOptions {
  /**
   * Milliseconds the whole stream may take, from its call to its last value (`timeout` bounds
   * each wait for the next value). Past it the iterator rejects with `CallTimeoutError` and the
   * call is cancelled. `Infinity`: no bound.
   * @default Infinity
   */
  readonly totalTimeout?: number;
}

export const STREAM_DEFAULTS = Object.freeze({
  /** Chunks a stream may have outstanding (sent by the worker, not yet taken by the consumer). */
  credit: 16,
  totalTimeout: Infinity,
});

/** Chunks a stream may have outstanding (sent by the worker, not yet taken by the consumer). */
export const STREAM_CREDIT = STREAM_DEFAULTS.credit;

/** A stream's two timeouts, checked, in ms (`Infinity`: none). */
export interface StreamLimits {
  /** The longest wait for the next chunk. */
  readonly idleMs: number;
  /** The longest the whole stream may take. */
  readonly totalMs: number;
}

/** Checks a stream's options; throws InvalidArgumentError naming the bad one. */
export function streamLimits(options: StreamOptions | undefined, defaultTimeoutMs: number): StreamLimits {
  if (options?.signal !== undefined && !isAbortSignal(options.signal)) throw new InvalidArgumentError("signal must be an AbortSignal");
  return {
    idleMs: options?.timeout === undefined ? defaultTimeoutMs : checkTimeout(options.timeout, "timeout"),
    totalMs: options?.totalTimeout === undefined ? STREAM_DEFAULTS.totalTimeout : checkTimeout(options.totalTimeout, "totalTimeout"),
  };
}

/** Where the CallClient hands the chunks of a stream it reads. */
export interface StreamSink {
  chunk(seq: number, value: unknown): void;
}

/** What a stream needs from its CallClient. */
export interface StreamPorts {
  readonly sinks: Map<string, StreamSink>;
  /** Sends the stream's call under `id` (never retried); the promise settles with its final `response`/`error`. */
  readonly start: (id: string, stream: { credit: number }, metadata: Metadata | undefined) => Promise<unknown>;
  readonly sendCredit: (id: string, n: number) => void;
  /**
   * The stream stopped here: its call ends with `error` and the worker gets a `cancel`. Counted
   * as a timeout (fed to the circuit breaker) when `timedOut`, else as a cancel (not a failure).
   */
  readonly stop: (id: string, error: Error, timedOut: boolean) => void;
  readonly tracing: CallTracing;
  readonly metrics: CallMetrics;
}

export class CallStream<T = unknown> implements AsyncIterable<T> {
  #used = false;

  constructor(
    readonly functionName: string,
    private readonly args: unknown[],
    private readonly limits: StreamLimits,
    private readonly ports: StreamPorts,
    private readonly signal: AbortSignal | undefined,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#used) throw new InvalidArgumentError("a stream can be iterated only once");
    this.#used = true;
    return new StreamIterator<T>(this.functionName, this.args, this.limits, this.ports, this.signal);
  }
}

type Waiter<T> = { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void };

class StreamIterator<T> implements AsyncIterator<T>, StreamSink {
  readonly #id = nextMessageId();
  readonly #fn: string;
  readonly #idleMs: number;
  readonly #ports: StreamPorts;
  #queue: unknown[] = [];
  #head = 0;
  #received = 0;
  /** Chunks taken by the consumer since the last `credit` was sent. */
  #taken = 0;
  #done = false;
  #error: unknown;
  #waiter: Waiter<T> | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #totalTimer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;
  /** The stream's span and channel events (tracing on), ended with the stream. */
  #trace: StreamTrace | undefined;

  constructor(fn: string, args: unknown[], limits: StreamLimits, ports: StreamPorts, signal: AbortSignal | undefined) {
    this.#fn = fn;
    this.#idleMs = limits.idleMs;
    this.#ports = ports;
    if (signal?.aborted) {
      // Never sent nor counted, as a call with an aborted signal.
      this.#done = true;
      this.#error = abortErrorFor(signal, fn);
      return;
    }
    if (signal !== undefined) {
      const onAbort = (): void => this.#stop(abortErrorFor(signal, fn), false);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unwatch = () => signal.removeEventListener("abort", onAbort);
    }
    ports.sinks.set(this.#id, this);
    if (limits.totalMs !== Infinity) {
      const error = (): CallTimeoutError => new CallTimeoutError(fn, limits.totalMs, "the stream's total timeout (totalTimeout) passed");
      this.#totalTimer = setTimeout(() => this.#stop(error(), true), limits.totalMs);
    }
    const send = (metadata: Metadata | undefined): void => {
      ports.start(this.#id, { credit: STREAM_CREDIT }, metadata).then(
        (result) => {
          if (result !== null && result !== undefined && this.#received === 0) {
            this.#finish(new ProtocolError(`'${fn}' was called as a stream, but the worker does not stream (a v4 peer?): it answered with one plain result`), false);
          } else this.#finish(undefined, false);
        },
        (error: unknown) => this.#finish(error, false),
      );
    };
    if (ports.tracing.on) this.#trace = ports.tracing.traceStream(this.#id, fn, args, send);
    else send(undefined);
  }

  chunk(_seq: number, value: unknown): void {
    if (this.#done) return;
    this.#received++;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#clearIdleTimer();
      this.#took();
      waiter.resolve({ value: value as T, done: false });
    } else this.#queue.push(value);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      if (!this.#done) this.#took();
      return Promise.resolve({ value: value as T, done: false });
    }
    if (this.#error !== undefined) {
      const error = this.#error;
      this.#error = undefined;
      return Promise.reject(error);
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== undefined) return Promise.reject(new InvalidArgumentError("next() called before the previous one settled"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      if (this.#idleMs !== Infinity) {
        this.#idleTimer = setTimeout(() => {
          this.#idleTimer = undefined;
          this.#stop(new CallTimeoutError(this.#fn, this.#idleMs, "no chunk came within the stream's timeout"), true);
        }, this.#idleMs);
      }
    });
  }

  /** `break` in a `for await`: the worker is told to stop (`cancel`); a cancel, not a failure. */
  return(): Promise<IteratorResult<T>> {
    if (!this.#done) this.#stop(undefined, false);
    this.#queue = [];
    this.#head = 0;
    this.#error = undefined;
    return Promise.resolve({ value: undefined, done: true });
  }

  /** One chunk reached the consumer: past half the credit, the worker may send that many more. */
  #took(): void {
    if (++this.#taken >= STREAM_CREDIT / 2) {
      this.#ports.sendCredit(this.#id, this.#taken);
      this.#taken = 0;
    }
  }

  /**
   * Ends the stream from this side (`error` undefined: the consumer's `return()`): what is
   * buffered is dropped, the call ends and the worker is told (`cancel`).
   */
  #stop(error: Error | undefined, timedOut: boolean): void {
    if (this.#done) return;
    this.#queue = [];
    this.#head = 0;
    this.#finish(error, true);
    const callError = error ?? new AbortError(`The consumer stopped the stream of '${this.#fn}'`, { functionName: this.#fn });
    this.#ports.stop(this.#id, callError, timedOut);
  }

  /**
   * The stream is over: the call settled (`response` → end, `error`/crash → `error`, after the
   * values received before it), or it stopped here (`cancelled`).
   */
  #finish(error: unknown, cancelled: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearIdleTimer();
    if (this.#totalTimer !== undefined) clearTimeout(this.#totalTimer);
    this.#unwatch?.();
    this.#ports.sinks.delete(this.#id);
    this.#ports.metrics.streamed(this.#fn, this.#received);
    this.#trace?.end(this.#received, cancelled, error);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter === undefined) this.#error = error;
    else if (error === undefined) waiter.resolve({ value: undefined, done: true });
    else waiter.reject(error);
  }

  #clearIdleTimer(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }
}

/** The values a remote method streams: what its async generator yields. */
type Streamed<R> = R extends AsyncIterable<infer V> ? V : R extends Iterable<infer V> ? V : unknown;
type AnyFunction = (...args: never[]) => unknown;

export type StreamProxy<T> = {
  [K in keyof T as T[K] extends AnyFunction ? K : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => CallStream<Streamed<R>> : never;
} & {
  /** A proxy whose streams use these options (`timeout`: the longest wait for each chunk; `totalTimeout`: for the whole stream). */
  withOptions(options: StreamOptions): StreamProxy<T>;
};

export type OpenStream = (functionName: string, args: unknown[], options: StreamOptions | undefined) => CallStream;

/** `handle.stream.<fn>(...args)`: like `handle.call`, each name opens a stream. */
export function createStreamProxy<T>(open: OpenStream, options?: StreamOptions): StreamProxy<T> {
  const withOptions = (next: StreamOptions): StreamProxy<T> => createStreamProxy<T>(open, { ...options, ...next });
  return new Proxy(Object.create(null) as object, {
    get(_target, property) {
      if (typeof property !== "string") return undefined;
      if (LOCAL_PROXY_NAMES.has(property)) {
        if (property === "withOptions") return withOptions;
        if (property === "toString" || property === "valueOf") return () => "[object MultifrostStreamProxy]";
        return undefined;
      }
      return (...args: unknown[]) => open(property, args, options);
    },
    set() {
      return false;
    },
  }) as StreamProxy<T>;
}
