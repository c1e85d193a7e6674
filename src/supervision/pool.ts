import { CallTimeoutError, InvalidArgumentError, WorkerExitedError, WorkerNotRunningError } from "../errors.js";
import { checkRetries } from "../parent/resolve-options.js";
import { createCallProxy, type CallOptions, type CallProxy, type DynamicFunctions } from "../parent/call-proxy.js";
import type { ParentWorker } from "../parent/parent-worker.js";
import type { Balancer } from "./balancers/balancer.js";
import { LeastBusy } from "./balancers/least-busy.js";
import { RoundRobin } from "./balancers/round-robin.js";
import type { NodeContext, SupervisedNode } from "./node.js";
import { DEFAULT_INTENSITY, DEFAULT_PERIOD_MS, type PoolSpec, type WorkerSpec } from "./spec.js";
import { Supervisor } from "./supervisor-node.js";
import { WorkerNode } from "./worker-node.js";

const WAITING_STATES = new Set(["spawning", "connecting", "restarting"]);

/**
 * A dynamic pool of identical workers under one_for_one supervision. A call goes to one live
 * member (round-robin or least-busy); when none is live, to one that is coming back (its buffer
 * holds the call). An idempotent call cut off by a member's death is sent again to another live
 * member. `resize()` grows or shrinks the pool within `maxChildren`.
 */
export class Pool extends Supervisor {
  readonly maxChildren: number;
  readonly call: CallProxy<DynamicFunctions>;
  readonly #spec: PoolSpec;
  readonly #members: WorkerNode[];
  readonly #balancer: Balancer;
  readonly #childContext: NodeContext;
  #serial: number;

  constructor(spec: PoolSpec, context: NodeContext) {
    const members: WorkerNode[] = [];
    let childContext: NodeContext | undefined;
    super(
      {
        id: spec.id,
        strategy: "one_for_one",
        intensity: spec.intensity ?? DEFAULT_INTENSITY,
        periodMs: spec.periodMs ?? spec.period ?? DEFAULT_PERIOD_MS,
      },
      context,
      {
        kind: "pool",
        parallelStart: true,
        children: (self) => {
          childContext = self;
          for (let i = 0; i < (spec.size ?? 1); i++) members.push(new WorkerNode(poolMember(spec, i + 1), self));
          return [...members];
        },
      },
    );
    this.#spec = spec;
    this.#members = members;
    this.#serial = members.length;
    this.#childContext = childContext!;
    this.#balancer = spec.select === "least-busy" ? new LeastBusy() : new RoundRobin();
    this.maxChildren = spec.maxChildren ?? spec.size ?? 1;
    this.call = createCallProxy((fn, args, options) => this.invoke(fn, args, options));
  }

  get size(): number {
    return this.#members.length;
  }

  get workers(): readonly ParentWorker[] {
    return this.#members.map((node) => node.worker);
  }

  /** Calls `fn` on one member of the pool. */
  invoke<T = unknown>(functionName: string, args: unknown[], options?: CallOptions): Promise<T> {
    const workers = this.workers;
    // A live member; else one coming back (its buffer holds the call); else any, which refuses
    // the call with its own reason (circuit open, stopped…).
    const worker = this.#balancer.pick(workers) ?? workers.find((member) => WAITING_STATES.has(member.state)) ?? workers[0];
    if (worker === undefined) {
      return Promise.reject(new WorkerNotRunningError(this.path, `the pool has no live worker (state: ${this.state})`));
    }
    const idempotent = options?.idempotent ?? this.#spec.idempotent ?? false;
    if (!idempotent) return worker.invoke<T>(functionName, args, options);
    let retries: number;
    try {
      retries = options?.retries === undefined ? (this.#spec.retries ?? 1) : checkRetries(options.retries);
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = options?.timeout ?? worker.defaultTimeout;
    return this.#invokeRetrying<T>(worker, functionName, args, options, Date.now() + timeoutMs, timeoutMs, retries);
  }

  /** Sends an idempotent call; if its member dies with it in flight, sends it to another member. */
  async #invokeRetrying<T>(
    worker: ParentWorker,
    functionName: string,
    args: unknown[],
    options: CallOptions | undefined,
    deadline: number,
    timeoutMs: number,
    retriesLeft: number,
  ): Promise<T> {
    const remaining = timeoutMs === Infinity ? Infinity : deadline - Date.now();
    if (remaining <= 0) throw new CallTimeoutError(functionName, timeoutMs);
    try {
      // The pool retries across members; the member itself must not hold it for its own restart.
      return await worker.invoke<T>(functionName, args, { ...options, timeout: remaining, idempotent: false });
    } catch (error) {
      // Cut off: its member died with it, or was taken out of the pool with it (a service pool's instance went).
      const cutOff = error instanceof WorkerExitedError || (error instanceof WorkerNotRunningError && !this.workers.includes(worker));
      if (!cutOff || retriesLeft <= 0) throw error;
      // Another live member now, or the same one once it is back (its buffer holds the call).
      const next = this.#balancer.pick(this.workers, worker) ?? worker;
      return this.#invokeRetrying<T>(next, functionName, args, options, deadline, timeoutMs, retriesLeft - 1);
    }
  }

  /** Grows or shrinks the pool to `size` workers (new ones are started, surplus ones stopped, newest first). */
  async resize(size: number): Promise<void> {
    if (!Number.isInteger(size) || size < 0 || size > this.maxChildren) {
      throw new InvalidArgumentError(`${this.path}: size must be an integer from 0 to maxChildren (${this.maxChildren}), got ${String(size)}`);
    }
    while (this.#members.length < size) await this.addMember({}).started;
    while (this.#members.length > size) await this.removeMember(this.#members.at(-1)!);
  }

  /** Adds a member (the pool's spec with `overrides`) and starts it if the pool runs (`started`: once it is up). */
  protected addMember(overrides: Partial<WorkerSpec> & { instance?: string }): { node: WorkerNode; started: Promise<void> } {
    const node = new WorkerNode({ ...poolMember(this.#spec, ++this.#serial), ...overrides }, this.#childContext);
    this.#members.push(node);
    (this.children as SupervisedNode[]).push(node);
    this.#childContext.onReshaped();
    const started = this.state === "running" || this.state === "starting" ? node.start() : Promise.resolve();
    return { node, started };
  }

  /** Takes a member out of the pool, then stops it. */
  protected async removeMember(node: WorkerNode): Promise<void> {
    if (this.detachMember(node)) await node.stop();
  }

  /**
   * Takes a member out of the pool now, synchronously: no call goes to it any more and its downs
   * no longer count (the caller stops it). Whether it was a member.
   */
  protected detachMember(node: WorkerNode): boolean {
    const index = this.#members.indexOf(node);
    if (index === -1) return false;
    this.#members.splice(index, 1);
    const children = this.children as SupervisedNode[];
    children.splice(children.indexOf(node), 1);
    this.#childContext.onReshaped();
    return true;
  }
}

/** The spec of a pool's n-th worker. */
function poolMember(spec: PoolSpec, n: number): WorkerSpec {
  const {
    type: _type,
    size: _size,
    maxChildren: _max,
    select: _select,
    intensity: _intensity,
    period: _period,
    periodMs: _periodMs,
    idempotent: _idempotent,
    retries: _retries,
    service: _service,
    ...settings
  } = spec;
  return { ...settings, type: "worker", id: `${spec.id}-${n}` };
}
