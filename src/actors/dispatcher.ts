import PQueue from "p-queue";
import { EncodeError } from "../errors.js";
import {
  createChunk,
  createError,
  createResponse,
  encodeMessage,
  formatRemoteError,
  prepareForWire,
  type CallMessage,
  type WireMessage,
} from "../wire/index.js";
import { isAsyncIterable, isThenable } from "../core/value-kinds.js";

/**
 * The child-side call dispatcher: looks the function up in a fixed table, runs it under a
 * p-queue concurrency bound (async handlers overlap) and encodes the reply. Replies go to
 * `send`; nothing here touches a socket.
 */
export type Handler = (...args: unknown[]) => unknown;

export interface DispatcherOptions {
  /** Calls run at once; further calls wait in order. */
  concurrency: number;
  /** Calls that may wait for a slot; beyond it a call is refused with a BusyError reply. */
  maxQueued?: number;
  /** Arguments a call may pass; beyond it a call is refused (see `DISPATCHER_DEFAULTS.maxArgs`). */
  maxArgs?: number;
  /** Names that answer with the list of callable names (v4 `listFunctions`/`list_functions`). */
  listNames?: readonly string[];
  /** Told of each BusyError refusal (the refusal path only; accepted calls never call it). */
  onBusy?: (running: number, waiting: number) => void;
  /** Invokes a handler for a call (default `handler(...call.args)`): the worker's call context and tracing. */
  invoke?: (handler: Handler, call: CallMessage) => unknown;
  /** A `cancel` came for a call that is running (async): abort what its handler sees. */
  onCancel?: (id: string) => void;
  /** A call handed to a handler has ended (each one, sync or async). */
  onEnd?: (id: string) => void;
}

/** Where a call that may still be cancelled is: waiting for a slot, running (async), or cancelled while waiting. */
const QUEUED = 0;
const RUNNING = 1;
const CANCELLED = 2;
type LiveState = typeof QUEUED | typeof RUNNING | typeof CANCELLED;

/** Replies go to `send(context, reply)`; `context` says where (e.g. the request's frames). */
export type ReplyFn<C> = (context: C, reply: Buffer) => void;

/**
 * `maxArgs`: arguments reach a handler on the stack (`fn(...args)`, `fn.apply` and `Reflect.apply`
 * alike): with Node 20's default stack, 120,000 arguments work and 125,000 throw "Maximum call
 * stack size exceeded". 65,536 leaves half the stack to the handler.
 */
export const DISPATCHER_DEFAULTS = Object.freeze({ maxQueued: 10_000, maxArgs: 65_536 });

/** What a callable name stands for: a handler, or the list of names. */
const LIST = Symbol("list of names");

export class Dispatcher {
  /** Handlers and the list names, in one table (a list name wins over a handler of that name). */
  readonly #table: ReadonlyMap<string, Handler | typeof LIST>;
  readonly #names: string[];
  readonly #queue: PQueue;
  readonly #maxQueued: number;
  readonly #maxArgs: number;
  #refusedBusy = 0;
  #refusedArgs = 0;
  readonly #onBusy: ((running: number, waiting: number) => void) | undefined;
  readonly #invokeHook: ((handler: Handler, call: CallMessage) => unknown) | undefined;
  readonly #onCancel: ((id: string) => void) | undefined;
  readonly #onEnd: ((id: string) => void) | undefined;
  /** Queued calls and running async ones, by id: what a `cancel` can reach. */
  readonly #live = new Map<string, LiveState>();
  #cancelledQueued = 0;
  /** Running streams (docs/wire.md, Streaming), by call id: their credit and whether cancelled. */
  readonly #streams = new Map<string, StreamState>();
  #chunksSent = 0;

  constructor(handlers: ReadonlyMap<string, Handler>, options: DispatcherOptions) {
    this.#names = [...handlers.keys()].sort();
    const table = new Map<string, Handler | typeof LIST>(handlers);
    for (const name of options.listNames ?? ["listFunctions", "list_functions"]) table.set(name, LIST);
    this.#table = table;
    this.#queue = new PQueue({ concurrency: options.concurrency });
    this.#maxQueued = options.maxQueued ?? DISPATCHER_DEFAULTS.maxQueued;
    this.#maxArgs = options.maxArgs ?? DISPATCHER_DEFAULTS.maxArgs;
    this.#onBusy = options.onBusy;
    this.#invokeHook = options.invoke;
    this.#onCancel = options.onCancel;
    this.#onEnd = options.onEnd;
  }

  /** Calls cancelled while they waited for a slot (they never ran). */
  get cancelledQueued(): number {
    return this.#cancelledQueued;
  }

  /**
   * A `cancel` for call `id`: a call still waiting never runs (and gets no reply: its caller
   * has stopped waiting); a running one is told through `onCancel`. False when no such call
   * is waiting or running.
   */
  cancel(id: string): boolean {
    const state = this.#live.get(id);
    if (state === undefined || state === CANCELLED) return false;
    if (state === QUEUED) {
      this.#live.set(id, CANCELLED);
      this.#cancelledQueued++;
    } else {
      this.#onCancel?.(id);
      const stream = this.#streams.get(id);
      if (stream !== undefined) {
        stream.cancelled = true;
        stream.wake?.();
      }
    }
    return true;
  }

  /** A `credit` for the stream of call `id`: it may send `n` more chunks. False for no such stream. */
  credit(id: string, n: number): boolean {
    const stream = this.#streams.get(id);
    if (stream === undefined) return false;
    stream.credit += n;
    stream.wake?.();
    return true;
  }

  /** `chunk` messages sent, all streams together. */
  get chunksSent(): number {
    return this.#chunksSent;
  }

  /** Calls refused because `maxQueued` calls were already waiting. */
  get refusedBusy(): number {
    return this.#refusedBusy;
  }

  /** Calls refused for passing more than `maxArgs` arguments. */
  get refusedArgs(): number {
    return this.#refusedArgs;
  }

  get functionNames(): readonly string[] {
    return this.#names;
  }

  /** Calls running plus calls waiting for a slot. */
  get inFlight(): number {
    return this.#queue.pending + this.#queue.size;
  }

  /** Resolves when no call is running or waiting. */
  idle(): Promise<void> {
    return this.#queue.onIdle();
  }

  /** Runs a validated call and hands the encoded reply to `send(context, reply)`. Never throws. */
  dispatch<C>(call: CallMessage, context: C, send: ReplyFn<C>): void {
    const name = call.function;
    const handler = this.#table.get(name);
    if (handler === LIST) {
      send(context, encodeMessage(createResponse(call.id, this.#names)));
      return;
    }
    if (handler === undefined) {
      const error = name.startsWith("_") || name.startsWith("#")
        ? `PermissionError: Cannot call private method '${name}'`
        : `AttributeError: Function '${name}' not found`;
      send(context, encodeMessage(createError(call.id, error)));
      return;
    }
    if (call.args.length > this.#maxArgs) {
      this.#refusedArgs++;
      const error = `InvalidArgumentError: call to '${name}' passes ${call.args.length} arguments; this worker accepts at most ${this.#maxArgs} (maxArgs): pass an array instead`;
      send(context, encodeMessage(createError(call.id, error)));
      return;
    }
    const queue = this.#queue;
    if (queue.size > 0 || queue.pending >= queue.concurrency) {
      if (queue.size >= this.#maxQueued) {
        this.#refusedBusy++;
        const error = `BusyError: worker busy (${queue.pending} calls running, ${queue.size} waiting; maxQueuedCalls ${this.#maxQueued})`;
        send(context, encodeMessage(createError(call.id, error)));
        this.#onBusy?.(queue.pending, queue.size);
        return;
      }
      // At the bound: wait in order for a slot (unless cancelled meanwhile).
      const id = call.id;
      this.#live.set(id, QUEUED);
      void queue.add(() => {
        if (this.#live.get(id) === CANCELLED) {
          this.#live.delete(id);
          return Promise.resolve();
        }
        this.#live.set(id, RUNNING);
        return this.#settle(this.#invoke(call, handler, context, send), id, context, send);
      });
      return;
    }
    // A free slot: run now. A synchronous result is answered at once, without the queue;
    // an async one holds a queue slot until it settles, so the bound still applies.
    const outcome = this.#invoke(call, handler, context, send);
    if (outcome instanceof Promise) {
      this.#live.set(call.id, RUNNING);
      void queue.add(() => this.#settle(outcome, call.id, context, send));
    } else {
      this.#onEnd?.(call.id);
      send(context, encodeReply(outcome));
    }
  }

  /** Calls the handler: a finished reply, or a promise of one for async handlers. */
  #invoke<C>(call: CallMessage, handler: Handler, context: C, send: ReplyFn<C>): WireMessage | Promise<WireMessage> {
    let result: unknown;
    try {
      const invoke = this.#invokeHook;
      result = invoke === undefined ? handler(...call.args) : invoke(handler, call);
    } catch (thrown) {
      return errorReply(call.id, thrown);
    }
    if (call.stream !== undefined && isAsyncIterable(result)) return this.#stream(call.id, result, call.stream.credit, context, send);
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => responseReply(call.id, value),
        (thrown: unknown) => errorReply(call.id, thrown),
      );
    }
    return responseReply(call.id, result);
  }

  /**
   * Sends what a generator handler yields as `chunk`s, never more than the caller's credit ahead
   * (the generator waits for a `credit`), then the ending `response` (null) or `error`. A `cancel`
   * stops it at its next step (`return()` runs its `finally` blocks).
   */
  async #stream<C>(id: string, iterable: AsyncIterable<unknown>, credit: number, context: C, send: ReplyFn<C>): Promise<WireMessage> {
    const state: StreamState = { credit, cancelled: false, wake: undefined };
    this.#streams.set(id, state);
    const iterator = iterable[Symbol.asyncIterator]();
    let seq = 0;
    try {
      for (;;) {
        while (state.credit <= 0 && !state.cancelled) await new Promise<void>((resolve) => (state.wake = resolve));
        state.wake = undefined;
        if (state.cancelled) break;
        const step = await iterator.next();
        if (step.done) return responseReply(id, null);
        if (state.cancelled) break;
        let bytes: Buffer;
        try {
          bytes = encodeMessage(createChunk(id, seq, prepareForWire(step.value, "result")));
        } catch (thrown) {
          await iterator.return?.();
          return errorReply(id, thrown);
        }
        seq++;
        state.credit--;
        this.#chunksSent++;
        send(context, bytes);
      }
      await iterator.return?.();
      return responseReply(id, null);
    } catch (thrown) {
      return errorReply(id, thrown);
    } finally {
      this.#streams.delete(id);
    }
  }

  async #settle<C>(outcome: WireMessage | Promise<WireMessage>, id: string, context: C, send: ReplyFn<C>): Promise<void> {
    const reply = await outcome;
    this.#live.delete(id);
    this.#onEnd?.(id);
    send(context, encodeReply(reply));
  }
}

function responseReply(id: string, result: unknown): WireMessage {
  try {
    return createResponse(id, prepareForWire(result, "result"));
  } catch (thrown) {
    return errorReply(id, thrown);
  }
}

function errorReply(id: string, thrown: unknown): WireMessage {
  const { error, stack } = formatRemoteError(thrown);
  return createError(id, error, stack);
}

interface StreamState {
  credit: number;
  cancelled: boolean;
  wake: (() => void) | undefined;
}

/** Encodes a reply; a result msgpack cannot carry becomes an error reply instead of a lost call. */
function encodeReply(reply: WireMessage): Buffer {
  try {
    return encodeMessage(reply);
  } catch (thrown) {
    const error = thrown instanceof EncodeError ? thrown : new EncodeError("result", String(thrown));
    return encodeMessage(createError(reply.id, `EncodeError: ${error.message}`));
  }
}
