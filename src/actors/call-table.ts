/**
 * Pending calls keyed by message id, with deadlines kept by one shared timer.
 *
 * Calls with the same timeout expire in the order they were made, so each distinct timeout
 * value gets an insertion-ordered Map whose first entry is its earliest deadline. One timer is
 * armed for the earliest deadline of all groups; settling a call never touches the timer. A
 * call therefore costs two Map writes and one promise, no `setTimeout` and no closure.
 */
export interface PendingCall {
  readonly id: string;
  readonly functionName: string;
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly deadline: number;
  /** `performance.now()` when the call was registered (for its latency). */
  readonly startedAt: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  group: Map<string, PendingCall> | undefined;
}

export type TimeoutErrorFactory = (call: PendingCall) => Error;

type Settle = (value: unknown) => void;

/** One executor for every call's promise: it hands `resolve`/`reject` over through these two. */
let capturedResolve: Settle | undefined;
let capturedReject: Settle | undefined;
function capture(resolve: Settle, reject: Settle): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** A pending call (one class, so every entry has the same shape). */
class Call implements PendingCall {
  group: Map<string, PendingCall> | undefined = undefined;

  constructor(
    readonly id: string,
    readonly functionName: string,
    readonly namespace: string,
    readonly timeoutMs: number,
    readonly deadline: number,
    readonly startedAt: number,
    readonly resolve: Settle,
    readonly reject: Settle,
  ) {}
}

export class CallTable {
  readonly #pending = new Map<string, PendingCall>();
  readonly #groups = new Map<number, Map<string, PendingCall>>();
  readonly #onTimeout: TimeoutErrorFactory;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(onTimeout: TimeoutErrorFactory) {
    this.#onTimeout = onTimeout;
  }

  get size(): number {
    return this.#pending.size;
  }

  has(id: string): boolean {
    return this.#pending.has(id);
  }

  /** Registers a call and returns its promise. `timeoutMs` may be `Infinity`. */
  register(id: string, functionName: string, timeoutMs: number, namespace: string): Promise<unknown> {
    const promise = new Promise(capture);
    const deadline = Date.now() + timeoutMs;
    const call = new Call(id, functionName, namespace, timeoutMs, deadline, performance.now(), capturedResolve!, capturedReject!);
    capturedResolve = capturedReject = undefined;
    this.#pending.set(id, call);
    if (timeoutMs !== Infinity) {
      let group = this.#groups.get(timeoutMs);
      if (!group) {
        group = new Map();
        this.#groups.set(timeoutMs, group);
      }
      group.set(id, call);
      call.group = group;
      if (deadline < this.#timerAt) this.#arm(deadline);
    }
    return promise;
  }

  /** Removes and returns the call, or undefined for an unknown (late, duplicate) id. */
  take(id: string): PendingCall | undefined {
    const call = this.#pending.get(id);
    if (call === undefined) return undefined;
    this.#pending.delete(id);
    call.group?.delete(id);
    return call;
  }

  resolve(id: string, value: unknown): boolean {
    const call = this.take(id);
    if (call === undefined) return false;
    call.resolve(value);
    return true;
  }

  reject(id: string, error: unknown): boolean {
    const call = this.take(id);
    if (call === undefined) return false;
    call.reject(error);
    return true;
  }

  /** Rejects every pending call with an error made for it. */
  rejectAll(makeError: (call: PendingCall) => Error): void {
    const calls = [...this.#pending.values()];
    this.#pending.clear();
    this.#groups.clear();
    this.#disarm();
    for (const call of calls) call.reject(makeError(call));
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - Date.now()));
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [timeoutMs, group] of this.#groups) {
      for (const call of group.values()) {
        if (call.deadline > now) {
          if (call.deadline < next) next = call.deadline;
          break;
        }
        group.delete(call.id);
        this.#pending.delete(call.id);
        call.reject(this.#onTimeout(call));
      }
      if (group.size === 0) this.#groups.delete(timeoutMs);
    }
    if (next !== Infinity && next < this.#timerAt) this.#arm(next);
  }
}
