/**
 * A FIFO with exactly one writer. zeromq.js allows one pending `send` per socket and throws
 * EBUSY synchronously on a second, so every message (calls, replies, heartbeats) goes through
 * here: `push` is synchronous, one async pump awaits each send in order.
 */
export type SendFn<T> = (item: T) => Promise<void>;
export type SendFailureFn<T> = (item: T, tag: string | undefined, error: unknown) => void;

export class SendQueue<T> {
  #items: (T | undefined)[] = [];
  #tags: (string | undefined)[] = [];
  #head = 0;
  #pumping = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  #gate: Promise<unknown> | undefined;
  /** The latest send handed to the socket (never rejects); the pump waits on it after EBUSY. */
  #lastSend: Promise<void> | undefined;
  readonly #send: SendFn<T>;
  readonly #onFailure: SendFailureFn<T>;

  constructor(send: SendFn<T>, onFailure: SendFailureFn<T>) {
    this.#send = send;
    this.#onFailure = onFailure;
  }

  /** Messages waiting to be handed to the socket. */
  get length(): number {
    return this.#items.length - this.#head;
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
        this.#lastSend = this.#track(this.#send(item), item, tag);
        return;
      } catch (error) {
        if (!isBusy(error)) {
          this.#onFailure(item, tag, error);
          return;
        }
        // A previous send is still pending: queue this one; the pump waits for it.
      }
    }
    this.#items.push(item);
    this.#tags.push(tag);
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
  drained(): Promise<void> {
    if (!this.#pumping && this.length === 0) return this.#lastSend ?? Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops accepting items; everything still queued is reported as failed. */
  close(reason: unknown): void {
    this.#closed = true;
    const items = this.#items;
    const tags = this.#tags;
    const head = this.#head;
    this.#items = [];
    this.#tags = [];
    this.#head = 0;
    for (let i = head; i < items.length; i++) this.#onFailure(items[i] as T, tags[i], reason);
    this.#wakeIdle();
  }

  /**
   * zeromq.js completes a send synchronously while the socket is writable (up to 512 in a
   * row) and throws EBUSY synchronously only while one send is really pending. So `push`
   * sends directly while nothing is queued, and the pump — started only after EBUSY — sends
   * without awaiting each message, waiting only when the socket says it is busy.
   */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      if (this.#gate) await this.#gate;
      let inFlight = this.#lastSend;
      this.#lastSend = undefined;
      for (;;) {
        while (this.#head < this.#items.length) {
          const index = this.#head;
          const item = this.#items[index] as T;
          const tag = this.#tags[index];
          let sending: Promise<void>;
          try {
            sending = this.#send(item);
          } catch (error) {
            if (inFlight !== undefined && isBusy(error)) {
              await inFlight; // the previous send is pending; then retry this item
              inFlight = undefined;
              continue;
            }
            this.#advance(index);
            this.#onFailure(item, tag, error);
            continue;
          }
          this.#advance(index);
          inFlight = this.#track(sending, item, tag);
        }
        if (inFlight === undefined) break;
        await inFlight;
        inFlight = undefined;
      }
    } finally {
      this.#pumping = false;
      this.#wakeIdle();
    }
  }

  /** A promise that settles with the send and reports its failure; it never rejects. */
  #track(sending: Promise<void>, item: T, tag: string | undefined): Promise<void> {
    return sending.then(undefined, (error: unknown) => this.#onFailure(item, tag, error));
  }

  #advance(index: number): void {
    this.#items[index] = undefined;
    this.#tags[index] = undefined;
    this.#head = index + 1;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#tags.length = 0;
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#tags = this.#tags.slice(this.#head);
      this.#head = 0;
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
