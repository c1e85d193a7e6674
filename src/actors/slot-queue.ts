/**
 * At most `concurrency` tasks at once, the others waiting in order: what the Dispatcher needs of
 * p-queue (`add`, `pending`, `size`, `onIdle`) in a few lines, so a worker does not load p-queue
 * and its dependencies at startup (docs/performance.md, A lean child). A task starts
 * synchronously in `add` when a slot is free; a finished task starts the next waiting one.
 */
export type SlotTask = () => Promise<unknown>;

export class SlotQueue {
  readonly concurrency: number;
  #running = 0;
  /** Waiting tasks from `#head` on (a moving head instead of `shift()`, compacted now and then). */
  #waiting: (SlotTask | undefined)[] = [];
  #head = 0;
  #idle: (() => void)[] = [];
  readonly #done = (): void => {
    this.#running--;
    this.#next();
  };

  constructor(concurrency: number) {
    if (!((Number.isInteger(concurrency) || concurrency === Infinity) && concurrency >= 1)) {
      throw new TypeError(`Expected \`concurrency\` to be a number from 1 and up, got \`${String(concurrency)}\``);
    }
    this.concurrency = concurrency;
  }

  /** Tasks running. */
  get pending(): number {
    return this.#running;
  }

  /** Tasks waiting for a slot. */
  get size(): number {
    return this.#waiting.length - this.#head;
  }

  add(task: SlotTask): void {
    if (this.#running < this.concurrency && this.size === 0) this.#run(task);
    else this.#waiting.push(task);
  }

  /** Resolves when nothing runs or waits. */
  onIdle(): Promise<void> {
    if (this.#running === 0 && this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #run(task: SlotTask): void {
    this.#running++;
    let promise: Promise<unknown>;
    try {
      promise = task();
    } catch {
      promise = Promise.resolve();
    }
    promise.then(this.#done, this.#done);
  }

  #next(): void {
    while (this.#running < this.concurrency && this.size > 0) {
      const task = this.#waiting[this.#head]!;
      this.#waiting[this.#head++] = undefined;
      if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      this.#run(task);
    }
    if (this.#running === 0 && this.size === 0) {
      this.#waiting = [];
      this.#head = 0;
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }
}
