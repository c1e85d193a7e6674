/**
 * A FIFO with exactly one writer. zeromq.js allows one pending `send` per socket and throws
 * EBUSY synchronously on a second, so every message (calls, replies, heartbeats) goes through
 * here: `push` is synchronous, and items are handed to the socket one after the other, in order.
 *
 * Two kinds of socket are supported:
 * - a waiting socket, whose `send` may stay pending (zeromq.js's default): while one is pending,
 *   the next `send` throws EBUSY and the queue waits for it;
 * - a socket that never waits (zeromq.js with `sendTimeout = 0`): `send` settles at once, and a
 *   send the socket cannot take now (EAGAIN) is refused. Given `sendWaiting`, the queue then
 *   resends the refused items through it, first and in order, before anything queued after them.
 *   A refusal is known only a microtask later, so an item handed over in between goes first: such
 *   a socket should refuse only when no peer can take anything (`zmq-channel.ts` sees to that).
 */
export type SendFn<T> = (item: T) => Promise<void>;
export type SendFailureFn<T> = (item: T, tag: string | undefined, error: unknown) => void;

/** Items with their tags, first in first out, without `Array.shift`. */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #tags: (string | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  /** The first item's tag (read it before `shift`). */
  get firstTag(): string | undefined {
    return this.#tags[this.#head];
  }

  push(item: T, tag: string | undefined): void {
    this.#items.push(item);
    this.#tags.push(tag);
  }

  /** Puts an item back in front (the one just shifted). */
  unshift(item: T, tag: string | undefined): void {
    if (this.#head > 0) {
      this.#head--;
      this.#items[this.#head] = item;
      this.#tags[this.#head] = tag;
    } else {
      this.#items.unshift(item);
      this.#tags.unshift(tag);
    }
  }

  /** Removes and returns the first item; read `firstTag` before. Only when `length > 0`. */
  shift(): T {
    const head = this.#head;
    const item = this.#items[head] as T;
    this.#items[head] = undefined;
    this.#tags[head] = undefined;
    this.#head = head + 1;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#tags.length = 0;
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#tags = this.#tags.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the FIFO and returns what it held, in order. */
  takeAll(): [T[], (string | undefined)[]] {
    const items = this.#items.slice(this.#head) as T[];
    const tags = this.#tags.slice(this.#head);
    this.#items = [];
    this.#tags = [];
    this.#head = 0;
    return [items, tags];
  }
}

export class SendQueue<T> {
  /** Pushed, not yet handed to the socket. */
  readonly #waiting = new Fifo<T>();
  /** Refused with EAGAIN: sent again (through `sendWaiting`) before anything in `#waiting`. */
  readonly #refused = new Fifo<T>();
  /** Handed to the socket, outcome not yet known, in the order sent (outcomes arrive in that order). */
  readonly #sent = new Fifo<T>();
  #pumping = false;
  #closed = false;
  /** A refused item being resent, waiting for a peer: still not taken by the socket. */
  #resending: { item: T; tag: string | undefined; dropped: boolean } | undefined;
  #idleWaiters: (() => void)[] = [];
  #gate: Promise<unknown> | undefined;
  /** Settles after the outcome of the latest send has been handled; never rejects. */
  #lastSend: Promise<void> | undefined;
  readonly #send: SendFn<T>;
  readonly #sendWaiting: SendFn<T> | undefined;
  readonly #onFailure: SendFailureFn<T>;
  readonly #onSent = (): void => {
    this.#sent.shift();
  };
  readonly #onSendError = (error: unknown): void => {
    const tag = this.#sent.firstTag;
    const item = this.#sent.shift();
    if (this.#sendWaiting !== undefined && !this.#closed && isAgain(error)) {
      this.#refused.push(item, tag);
      if (!this.#pumping) void this.#pump();
      return;
    }
    this.#onFailure(item, tag, error);
  };

  /**
   * `send` hands one item to the socket. `sendWaiting`, for sockets that never wait, sends one
   * item waiting as long as needed for the socket to take it.
   */
  constructor(send: SendFn<T>, onFailure: SendFailureFn<T>, sendWaiting?: SendFn<T>) {
    this.#send = send;
    this.#onFailure = onFailure;
    this.#sendWaiting = sendWaiting;
  }

  /** Messages waiting to be handed to the socket. */
  get length(): number {
    return this.#waiting.length + this.#refused.length;
  }

  /** Queues an item; `tag` (e.g. a call id) is handed back if the send fails. */
  push(item: T, tag?: string): void {
    if (this.#closed) {
      this.#onFailure(item, tag, new Error("socket closed"));
      return;
    }
    // Nothing is queued while the pump is idle, so the item may go straight to the socket.
    if (!this.#pumping && this.#gate === undefined) {
      try {
        this.#hand(item, tag);
        return;
      } catch (error) {
        if (!isBusy(error)) {
          this.#onFailure(item, tag, error);
          return;
        }
        // A previous send is still pending: queue this one; the pump waits for it.
      }
    }
    this.#waiting.push(item, tag);
    if (!this.#pumping) void this.#pump();
  }

  /**
   * Holds sending until `until` settles (zeromq.js refuses sends while a bind is in progress);
   * items pushed meanwhile wait in order.
   */
  holdUntil(until: Promise<unknown>): void {
    const gate: Promise<unknown> = until.then(
      () => undefined,
      () => undefined,
    );
    this.#gate = gate;
    void gate.then(() => {
      if (this.#gate === gate) this.#gate = undefined;
    });
  }

  /** Resolves when everything queued so far has been handed to the socket. */
  async drained(): Promise<void> {
    for (;;) {
      if (this.#pumping || this.length > 0) {
        await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
        if (this.#closed) return;
        continue;
      }
      const last = this.#lastSend;
      if (last === undefined) return;
      await last;
      // Its outcome may have been a refusal, which restarts the pump.
      if (last === this.#lastSend && !this.#pumping && this.length === 0) return;
    }
  }

  /**
   * Removes everything the socket has not taken yet — queued items, refused ones, and a resend
   * still waiting for a peer (whose outcome is then ignored) — and returns them with their tags,
   * in order. The socket keeps what it already took.
   */
  takeUnsent(): [T[], (string | undefined)[]] {
    const items: T[] = [];
    const tags: (string | undefined)[] = [];
    const resending = this.#resending;
    if (resending !== undefined && !resending.dropped) {
      resending.dropped = true;
      items.push(resending.item);
      tags.push(resending.tag);
    }
    for (const fifo of [this.#refused, this.#waiting]) {
      const [taken, takenTags] = fifo.takeAll();
      items.push(...taken);
      tags.push(...takenTags);
    }
    return [items, tags];
  }

  /** Stops accepting items; everything still queued is reported as failed. */
  close(reason: unknown): void {
    this.#closed = true;
    for (const fifo of [this.#refused, this.#waiting]) {
      const [items, tags] = fifo.takeAll();
      for (let i = 0; i < items.length; i++) this.#onFailure(items[i] as T, tags[i], reason);
    }
    this.#wakeIdle();
  }

  /** Hands an item to the socket (throws what `send` throws synchronously, e.g. EBUSY). */
  #hand(item: T, tag: string | undefined): void {
    const sending = this.#send(item);
    this.#sent.push(item, tag);
    this.#lastSend = sending.then(this.#onSent, this.#onSendError);
  }

  /**
   * Runs while items cannot go straight to the socket: during a bind, after EBUSY (zeromq.js
   * completes up to 512 sends in a row synchronously, then one stays pending), and after a
   * refusal. Sends without awaiting each item; waits only when the socket says it is busy, and
   * for all outcomes before resending refused items.
   */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      if (this.#gate) await this.#gate;
      for (;;) {
        if (this.#refused.length > 0) {
          // Later sends may be refused too: wait for every outcome, then resend in order.
          if (this.#sent.length > 0) {
            await this.#lastSend;
            continue;
          }
          const tag = this.#refused.firstTag;
          const item = this.#refused.shift();
          if (this.#closed) {
            this.#onFailure(item, tag, new Error("socket closed"));
            continue;
          }
          const resending = { item, tag, dropped: false };
          this.#resending = resending;
          try {
            await this.#sendWaiting!(item);
          } catch (error) {
            if (!resending.dropped) this.#onFailure(item, tag, error);
          } finally {
            this.#resending = undefined;
          }
          continue;
        }
        if (this.#waiting.length === 0) {
          if (this.#sent.length === 0) break;
          await this.#lastSend; // a refusal among these comes back through #refused
          continue;
        }
        const tag = this.#waiting.firstTag;
        const item = this.#waiting.shift();
        try {
          this.#hand(item, tag);
        } catch (error) {
          if (isBusy(error) && this.#sent.length > 0) {
            this.#waiting.unshift(item, tag);
            await this.#lastSend; // the previous send is pending; then retry this item
            continue;
          }
          this.#onFailure(item, tag, error);
        }
      }
    } finally {
      this.#pumping = false;
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

function isBusy(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "EBUSY";
}

function isAgain(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "EAGAIN";
}
