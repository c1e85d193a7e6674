/**
 * Pending calls keyed by message id, with deadlines kept by one shared timer.
 *
 * Calls with the same timeout expire in the order they were made, so each distinct timeout
 * value gets an insertion-ordered Map whose first entry is its earliest deadline. One timer is
 * armed for the earliest deadline of all groups; settling a call never touches the timer.
 * These Maps are also the index by id (calls without a deadline have one of their own), so a
 * call costs one Map write and one promise, no `setTimeout` and no closure. Ids are unique
 * (`nextMessageId`).
 */
export interface PendingCall {
  readonly id: string;
  readonly functionName: string;
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly deadline: number;
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
    /** Registration order, across groups (for `rejectAll`). */
    readonly order: number,
  ) {}
}

export class CallTable {
  /** Calls by timeout value; insertion order is deadline order within each. */
  readonly #groups = new Map<number, Map<string, PendingCall>>();
  /** The same Maps as an array, searched in turn by id (there are few timeout values). */
  #groupList: Map<string, PendingCall>[] = [];
  /** Calls that never time out. */
  readonly #unbounded = new Map<string, PendingCall>();
  readonly #onTimeout: TimeoutErrorFactory;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #order = 0;

  constructor(onTimeout: TimeoutErrorFactory) {
    this.#onTimeout = onTimeout;
  }

  get size(): number {
    let size = this.#unbounded.size;
    for (const group of this.#groupList) size += group.size;
    return size;
  }

  has(id: string): boolean {
    return this.#find(id) !== undefined;
  }

  /** Registers a call and returns its promise. `timeoutMs` may be `Infinity`. */
  register(id: string, functionName: string, timeoutMs: number, namespace: string): Promise<unknown> {
    const promise = new Promise(capture);
    const startedAt = Date.now();
    const deadline = startedAt + timeoutMs;
    const call = new Call(id, functionName, namespace, timeoutMs, deadline, startedAt, capturedResolve!, capturedReject!, this.#order++);
    capturedResolve = capturedReject = undefined;
    if (timeoutMs === Infinity) {
      this.#unbounded.set(id, call);
      return promise;
    }
    let group = this.#groups.get(timeoutMs);
    if (group === undefined) {
      group = new Map();
      this.#groups.set(timeoutMs, group);
      this.#groupList.push(group);
    }
    group.set(id, call);
    call.group = group;
    if (deadline < this.#timerAt) this.#arm(deadline);
    return promise;
  }

  /** Removes and returns the call, or undefined for an unknown (late, duplicate) id. */
  take(id: string): PendingCall | undefined {
    const groups = this.#groupList;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i]!;
      const call = group.get(id);
      if (call !== undefined) {
        group.delete(id);
        return call;
      }
    }
    const call = this.#unbounded.get(id);
    if (call !== undefined) this.#unbounded.delete(id);
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

  /** Rejects every pending call, in the order they were made, with an error made for it. */
  rejectAll(makeError: (call: PendingCall) => Error): void {
    const calls = [...this.#unbounded.values()];
    for (const group of this.#groupList) calls.push(...group.values());
    calls.sort((a, b) => (a as Call).order - (b as Call).order);
    this.#unbounded.clear();
    this.#groups.clear();
    this.#groupList = [];
    this.#disarm();
    for (const call of calls) call.reject(makeError(call));
  }

  /** The pending call with this id, without removing it. */
  #find(id: string): PendingCall | undefined {
    for (const group of this.#groupList) {
      const call = group.get(id);
      if (call !== undefined) return call;
    }
    return this.#unbounded.get(id);
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
        call.reject(this.#onTimeout(call));
      }
      if (group.size === 0) {
        this.#groups.delete(timeoutMs);
        this.#groupList = this.#groupList.filter((listed) => listed !== group);
      }
    }
    if (next !== Infinity && next < this.#timerAt) this.#arm(next);
  }
}
