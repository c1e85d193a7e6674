/**
 * Streamed calls (docs/api.md, Streaming; docs/wire.md, Streaming): `worker.stream(name, args)`
 * and `handle.stream.<fn>(...args)` return an AsyncIterable of the values the worker yields.
 * The call goes out as a normal `call` carrying `stream: {credit}`; the worker answers with
 * `chunk` messages (the call's id, `seq` 0, 1, 2…) and ends with the usual `response` (result
 * null) or `error`. The parent keeps at most `credit` chunks buffered: it grants more with a
 * `credit` message as the consumer takes them. Breaking out of a `for await` (the iterator's
 * `return()`) and an idle timeout (`timeout` applies to each wait for the next chunk) cancel the
 * call (`cancel`). Nothing here touches a socket: the CallClient sends for it.
 */
import { CallTimeoutError, InvalidArgumentError, ProtocolError } from "../errors.js";
import { nextMessageId } from "../wire/index.js";
import { LOCAL_PROXY_NAMES, type CallOptions } from "./call-proxy.js";
import { isValidTimeout } from "./options.js";

/** Chunks a stream may have outstanding (sent by the worker, not yet taken by the consumer). */
export const STREAM_CREDIT = 16;

/** Where the CallClient hands the chunks of a stream it reads. */
export interface StreamSink {
  chunk(seq: number, value: unknown): void;
}

/** Sends the stream's call under `id`; the promise settles with its final `response`/`error`. */
export type StartStream = (id: string, signal: AbortSignal, stream: { credit: number }) => Promise<unknown>;

export interface StreamPorts {
  readonly sinks: Map<string, StreamSink>;
  readonly start: StartStream;
  readonly sendCredit: (id: string, n: number) => void;
}

export class CallStream<T = unknown> implements AsyncIterable<T> {
  #used = false;

  constructor(
    readonly functionName: string,
    private readonly idleMs: number,
    private readonly ports: StreamPorts,
    private readonly signal: AbortSignal | undefined,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#used) throw new InvalidArgumentError("a stream can be iterated only once");
    this.#used = true;
    return new StreamIterator<T>(this.functionName, this.idleMs, this.ports, this.signal);
  }
}

type Waiter<T> = { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void };

class StreamIterator<T> implements AsyncIterator<T>, StreamSink {
  readonly #id = nextMessageId();
  readonly #fn: string;
  readonly #idleMs: number;
  readonly #ports: StreamPorts;
  readonly #abort = new AbortController();
  #queue: unknown[] = [];
  #head = 0;
  #received = 0;
  /** Chunks taken by the consumer since the last `credit` was sent. */
  #taken = 0;
  #done = false;
  #error: unknown;
  #waiter: Waiter<T> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;

  constructor(fn: string, idleMs: number, ports: StreamPorts, signal: AbortSignal | undefined) {
    this.#fn = fn;
    this.#idleMs = idleMs;
    this.#ports = ports;
    if (signal !== undefined) {
      const onAbort = (): void => this.#abort.abort(signal.reason);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        this.#unwatch = () => signal.removeEventListener("abort", onAbort);
      }
    }
    ports.sinks.set(this.#id, this);
    ports.start(this.#id, this.#abort.signal, { credit: STREAM_CREDIT }).then(
      (result) => {
        if (result !== null && result !== undefined && this.#received === 0) {
          this.#fail(new ProtocolError(`'${fn}' was called as a stream, but the worker does not stream (a v4 peer?): it answered with one plain result`));
        } else this.#finish(undefined);
      },
      (error: unknown) => this.#finish(error),
    );
  }

  chunk(_seq: number, value: unknown): void {
    if (this.#done) return;
    this.#received++;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#clearTimer();
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
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#fail(new CallTimeoutError(this.#fn, this.#idleMs, "no chunk came within the stream's timeout"));
        }, this.#idleMs);
      }
    });
  }

  /** `break` in a `for await`: the worker is told to stop (`cancel`). */
  return(): Promise<IteratorResult<T>> {
    if (!this.#done) this.#fail(undefined);
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

  /** Ends the stream here and cancels the call (an idle timeout, `return()`). */
  #fail(error: unknown): void {
    if (this.#done) return;
    this.#finish(error);
    this.#abort.abort(error);
  }

  /** The call settled (`response` → end, `error`/crash → `error`), or the stream stops here. */
  #finish(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    this.#unwatch?.();
    this.#ports.sinks.delete(this.#id);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter === undefined) this.#error = error;
    else if (error === undefined) waiter.resolve({ value: undefined, done: true });
    else waiter.reject(error);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** The values a remote method streams: what its async generator yields. */
type Streamed<R> = R extends AsyncIterable<infer V> ? V : R extends Iterable<infer V> ? V : unknown;
type AnyFunction = (...args: never[]) => unknown;

export type StreamProxy<T> = {
  [K in keyof T as T[K] extends AnyFunction ? K : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => CallStream<Streamed<R>> : never;
} & {
  /** A proxy whose streams use these options (`timeout`: the longest wait for each chunk). */
  withOptions(options: CallOptions): StreamProxy<T>;
};

export type OpenStream = (functionName: string, args: unknown[], options: CallOptions | undefined) => CallStream;

/** `handle.stream.<fn>(...args)`: like `handle.call`, each name opens a stream. */
export function createStreamProxy<T>(open: OpenStream, options?: CallOptions): StreamProxy<T> {
  const withOptions = (next: CallOptions): StreamProxy<T> => createStreamProxy<T>(open, { ...options, ...next });
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

/** Checks a stream's options; the idle timeout in ms. */
export function streamIdleMs(options: CallOptions | undefined, defaultMs: number): number {
  const timeout = options?.timeout ?? defaultMs;
  if (timeout !== defaultMs && !isValidTimeout(timeout)) {
    throw new InvalidArgumentError(`timeout must be a positive number of ms or Infinity, got ${String(options?.timeout)}`);
  }
  return timeout;
}
