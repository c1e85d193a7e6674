import { AsyncLocalStorage } from "node:async_hooks";
import type { CallMessage, Metadata } from "../wire/messages.js";
import { isAsyncIterator } from "../core/value-kinds.js";

/**
 * The call a TS worker's handler is running, as `this.call` (or `currentCall()`): the same fields
 * the Python library's `self.call` has, read from the call message and its `metadata` map
 * (docs/wire.md). Async handlers each see their own call across awaits (AsyncLocalStorage,
 * switched on by the first async handler: a worker with only synchronous handlers never pays for
 * it, and its handlers see their call while they run, not in callbacks they schedule).
 */
export interface CallContext {
  /** The call message's id. */
  readonly id: string;
  readonly function: string;
  readonly namespace: string;
  readonly clientName: string | undefined;
  /** W3C trace context from `metadata.traceparent` / `metadata.tracestate`, when sent. */
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  /** When the caller stops waiting, in ms since the epoch (`metadata.deadline` is in seconds), when sent. */
  readonly deadline: number | undefined;
  /**
   * Aborts when the caller cancels the call (its signal aborted, or its timeout passed: a
   * `cancel` message, docs/wire.md); `reason` is an AbortError DOMException.
   */
  readonly signal: AbortSignal;
  /** The call's whole `metadata` map (empty when none was sent). */
  readonly metadata: Readonly<Metadata>;
}

const NO_METADATA: Readonly<Metadata> = Object.freeze({});

/**
 * This module's state is the process's, whichever copy of the module runs: `multifrost/child` is a
 * bundle with its own copy (scripts/build-child.mjs), and a worker may mix it with `multifrost`
 * (a helper calling `currentCall()` from one while its class extends the other's ChildWorker), or
 * run beside another installed copy. The first copy loaded creates the state; the key carries a
 * version, to be bumped if its shape ever changes.
 */
interface CallState {
  /** Each async handler's call, across its awaits (switched on by the first async handler). */
  readonly storage: AsyncLocalStorage<CallContext>;
  /**
   * The signals of running calls that asked for one (or were cancelled before asking), by call id.
   * An entry lives until `releaseCall(id)`, which the dispatcher calls when the call ends.
   */
  readonly controllers: Map<string, AbortController>;
  /** The call a synchronous handler is running (set only while it runs; wins over the storage). */
  runningSync: CallContext | undefined;
  storageOn: boolean;
}

const STATE = Symbol.for("multifrost.callContext.v1");
const state = ((globalThis as { [STATE]?: CallState })[STATE] ??= {
  storage: new AsyncLocalStorage<CallContext>(),
  controllers: new Map<string, AbortController>(),
  runningSync: undefined,
  storageOn: false,
});
const { storage, controllers } = state;

/** A `cancel` for the running call `id`: aborts its signal (now, or as it is first read). */
export function cancelCall(id: string): void {
  let controller = controllers.get(id);
  if (controller === undefined) {
    controller = new AbortController();
    controllers.set(id, controller);
  }
  if (!controller.signal.aborted) controller.abort(new DOMException("The caller cancelled the call", "AbortError"));
}

/** The call `id` ended: its signal is forgotten. Cheap when no handler asked for a signal. */
export function releaseCall(id: string): void {
  if (controllers.size !== 0) controllers.delete(id);
}

/** Built per call; everything but the id and names is read from the message when first asked for. */
export class IncomingCall implements CallContext {
  readonly #message: CallMessage;
  #signal: AbortSignal | undefined;

  constructor(message: CallMessage) {
    this.#message = message;
  }

  get id(): string {
    return this.#message.id;
  }
  get function(): string {
    return this.#message.function;
  }
  get namespace(): string {
    return this.#message.namespace;
  }
  get clientName(): string | undefined {
    return this.#message.client_name;
  }
  get metadata(): Readonly<Metadata> {
    const metadata = this.#message.metadata;
    return typeof metadata === "object" && metadata !== null && !Array.isArray(metadata) ? metadata : NO_METADATA;
  }
  get traceparent(): string | undefined {
    const value = this.metadata.traceparent;
    return typeof value === "string" ? value : undefined;
  }
  get tracestate(): string | undefined {
    const value = this.metadata.tracestate;
    return typeof value === "string" ? value : undefined;
  }
  get deadline(): number | undefined {
    const value = this.metadata.deadline;
    return typeof value === "number" && Number.isFinite(value) ? value * 1000 : undefined;
  }
  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      const id = this.#message.id;
      let controller = controllers.get(id);
      if (controller === undefined) {
        controller = new AbortController();
        controllers.set(id, controller);
      }
      this.#signal = controller.signal;
    }
    return this.#signal;
  }
  toJSON(): object {
    const { id, function: fn, namespace, clientName, traceparent, tracestate, deadline } = this;
    return { id, function: fn, namespace, clientName, traceparent, tracestate, deadline };
  }
}

const AsyncFunction = (async () => undefined).constructor;
const AsyncGeneratorFunction = async function* () {}.constructor;

/** The call being handled here, or undefined outside a handler. */
export function currentCall(): CallContext | undefined {
  return state.runningSync ?? storage.getStore();
}

/** Runs `handler(...args)` as the handling of `call`. */
export function runInCall(call: CallContext, handler: (...args: unknown[]) => unknown, args: unknown[]): unknown {
  // Once an async handler has switched the storage on (its cost is then paid), every handler uses
  // it, so callbacks a synchronous handler schedules never see another call's context either.
  if (state.storageOn || handler.constructor === AsyncFunction || handler.constructor === AsyncGeneratorFunction) {
    state.storageOn = true;
    const result = storage.run(call, handler, ...args);
    // A generator's body runs on each next(), later and elsewhere: run those in the call too.
    return isAsyncIterator(result) ? iterateInCall(call, result) : result;
  }
  const previous = state.runningSync;
  state.runningSync = call;
  try {
    return handler(...args);
  } finally {
    state.runningSync = previous;
  }
}

/** The same iterator, each step of which runs as the handling of `call` (so `this.call` works in generators). */
function iterateInCall(call: CallContext, iterator: AsyncIterableIterator<unknown>): AsyncIterableIterator<unknown> {
  const wrapped: AsyncIterableIterator<unknown> = {
    next: (...value: [] | [unknown]) => storage.run(call, () => iterator.next(...value)),
    return: (value?: unknown) => storage.run(call, () => iterator.return?.(value) ?? Promise.resolve({ done: true as const, value })),
    throw: (error?: unknown) => storage.run(call, () => iterator.throw?.(error) ?? Promise.reject(error)),
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}
