import type { CallTable, PendingCall } from "../actors/call-table.js";
import type { DealerChannel } from "../actors/zmq-channel.js";
import { CallTimeoutError } from "../errors.js";
import { createCall, encodeMessage, nextMessageId } from "../wire/index.js";
import type { Metadata } from "../wire/messages.js";

/**
 * The calls that wait for a worker to be (back) up (DESIGN §4, at-most-once): calls made while it
 * starts or restarts, calls a lost channel never handed to zeromq, and idempotent calls sent again
 * under a new id. A call keeps its caller's deadline across all of it. The CallClient owns the
 * pending-call table this works on and decides when to buffer, flush or drop.
 */

/** A call whose bytes wait for the worker to be (back) up. */
interface BufferedCall {
  id: string;
  bytes: Buffer;
}

/** An idempotent call's recipe, kept while it is in flight so it can be re-sent under a new id. */
export interface RetryableCall {
  functionName: string;
  args: unknown[];
  namespace: string;
  clientName: string | undefined;
  /** The call's metadata (trace context), sent again with each retry. */
  metadata: Metadata | undefined;
  retriesLeft: number;
}

export class RestartBuffer {
  readonly #calls: CallTable;
  /** Heartbeats in flight: never buffered, never retried. */
  readonly #heartbeatIds: ReadonlySet<string>;
  readonly #stats: { callsSent: number; retries: number };
  readonly #retryable = new Map<string, RetryableCall>();
  /** Re-registered calls (retried or re-buffered) by id → the timeout their caller gave. */
  readonly #requestedTimeouts = new Map<string, number>();
  #buffer: BufferedCall[] = [];

  constructor(calls: CallTable, heartbeatIds: ReadonlySet<string>, stats: { callsSent: number; retries: number }) {
    this.#calls = calls;
    this.#heartbeatIds = heartbeatIds;
    this.#stats = stats;
  }

  /** Calls in the buffer, including any that timed out while waiting (see `prune`). */
  get length(): number {
    return this.#buffer.length;
  }

  push(id: string, bytes: Buffer): void {
    this.#buffer.push({ id, bytes });
  }

  /** Whether the call `id` waits in the buffer (was never sent). */
  isBuffered(id: string): boolean {
    return this.#buffer.some((call) => call.id === id);
  }

  /** Forgets a cancelled call: out of the buffer and its retry recipe; true when it was still buffered (never sent). */
  drop(id: string): boolean {
    this.#retryable.delete(id);
    const index = this.#buffer.findIndex((call) => call.id === id);
    if (index < 0) return false;
    this.#buffer.splice(index, 1);
    return true;
  }

  /** Drops the calls that timed out while waiting. */
  prune(): void {
    this.#buffer = this.#buffer.filter((call) => this.#calls.has(call.id));
  }

  /** Sends every buffered call still pending through `channel`; the buffer is empty afterwards. */
  flush(channel: DealerChannel | undefined): void {
    const buffered = this.#buffer;
    this.#buffer = [];
    if (channel === undefined) return;
    for (const call of buffered) {
      if (!this.#calls.has(call.id)) continue; // timed out while waiting
      this.#stats.callsSent++;
      channel.send(call.bytes, call.id);
    }
  }

  /** Forgets every buffered call and retry recipe (their promises are settled by the caller). */
  clear(): void {
    this.#buffer = [];
    this.#retryable.clear();
  }

  keepRecipe(id: string, promise: Promise<unknown>, recipe: RetryableCall): void {
    this.#retryable.set(id, recipe);
    const forget = () => this.#retryable.delete(id);
    void promise.then(forget, forget);
  }

  /**
   * Moves the calls `channel` has not handed to zeromq yet to the front of the buffer: they never
   * reached the worker and will go to the next connection.
   */
  rescueUnsent(channel: DealerChannel | undefined): void {
    if (channel === undefined) return;
    const [items, tags] = channel.takeUnsent();
    const unsent: BufferedCall[] = [];
    for (let i = 0; i < items.length; i++) {
      const id = tags[i];
      if (id !== undefined && !this.#heartbeatIds.has(id) && this.#calls.has(id)) unsent.push({ id, bytes: items[i]! });
    }
    // Unsent calls go first: they were made before anything buffered since.
    if (unsent.length > 0) this.#buffer = [...unsent, ...this.#buffer];
  }

  /**
   * The connection is gone and its unsent calls are rescued: idempotent calls with retries left
   * wait for the next connection (under a new id, with what is left of their timeout), as do the
   * buffered ones; every other pending call fails now with `error`.
   */
  cutOff(error: Error, onCut?: (call: PendingCall) => void): void {
    const waiting = new Set(this.#buffer.map((call) => call.id));
    // A snapshot: #requeue adds entries, which a live Map iteration would visit (and retry) again.
    for (const [id, recipe] of [...this.#retryable]) {
      if (recipe.retriesLeft <= 0 || waiting.has(id)) continue;
      const call = this.#calls.take(id);
      this.#retryable.delete(id);
      if (call !== undefined) this.#requeue(call, recipe);
    }
    // Calls waiting in the buffer (requeued ones included) were never sent: only the sent ones fail.
    const kept = this.#buffer.map((call) => this.#calls.take(call.id)).filter((call) => call !== undefined);
    this.#calls.rejectAll((call) => {
      onCut?.(call);
      return error;
    });
    for (const call of kept) this.#rebuffer(call);
  }

  /** The timeout the caller asked for (a re-registered call's table entry holds only what was left of it). */
  requestedTimeout(call: PendingCall): number {
    return this.#requestedTimeouts.get(call.id) ?? call.timeoutMs;
  }

  #requeue(call: PendingCall, recipe: RetryableCall): void {
    const remaining = call.timeoutMs === Infinity ? Infinity : call.deadline - Date.now();
    if (remaining <= 0) {
      call.reject(new CallTimeoutError(call.functionName, this.requestedTimeout(call)));
      return;
    }
    const id = nextMessageId();
    const bytes = encodeMessage(createCall(id, recipe.functionName, recipe.args, recipe.namespace, recipe.clientName, recipe.metadata));
    this.#retryable.set(id, { ...recipe, retriesLeft: recipe.retriesLeft - 1 });
    this.#reregister(call, id, remaining, () => this.#retryable.delete(id));
    this.#stats.retries++;
    this.#buffer.push({ id, bytes });
  }

  /** Puts a never-sent call back in the table (same id) after a rejectAll. */
  #rebuffer(call: PendingCall): void {
    const remaining = call.timeoutMs === Infinity ? Infinity : Math.max(1, call.deadline - Date.now());
    this.#reregister(call, call.id, remaining);
  }

  /**
   * Registers a taken call again under `id` with `remaining` ms; its outcome settles the original
   * caller. The caller's own timeout is remembered so a timeout error still reports it.
   */
  #reregister(call: PendingCall, id: string, remaining: number, onSettled?: () => void): void {
    const requested = this.requestedTimeout(call);
    this.#requestedTimeouts.delete(call.id);
    this.#requestedTimeouts.set(id, requested);
    const settled = () => {
      this.#requestedTimeouts.delete(id);
      onSettled?.();
    };
    this.#calls.register(id, call.functionName, remaining, call.namespace).then(
      (value) => {
        settled();
        call.resolve(value);
      },
      (error: unknown) => {
        settled();
        call.reject(error);
      },
    );
  }
}
