import { createActor, fromPromise, type Actor, type AnyActorRef } from "xstate";
import { RestartIntensity } from "./core/restart-intensity.js";
import { StateWaiters } from "./actors/state-waiters.js";
import type { CallOptions, CallProxy, DynamicFunctions } from "./call-proxy.js";
import { createCallProxy } from "./call-proxy.js";
import { errorSummary, InvalidArgumentError, SupervisorError, WorkerNotRunningError } from "./errors.js";
import { LIVE_STATES as LIVE } from "./machines/connection.js";
import { supervisorMachine, type SupervisorState } from "./machines/supervisor.js";
import { ParentWorker, type InspectOption, type SpawnOptions, type StateChange } from "./parent-worker.js";
import {
  checkSupervisor,
  DEFAULT_INTENSITY,
  DEFAULT_PERIOD_MS,
  resolveChild,
  type PoolSpec,
  type Strategy,
  type SupervisorSpec,
  type WorkerSpec,
} from "./supervision-spec.js";

/** One transition of one actor in a supervision tree. */
export interface TreeEvent {
  /** Where in the tree, e.g. "root/pipeline/fetch". */
  path: string;
  kind: "worker" | "supervisor" | "pool";
  from: string;
  to: string;
  reason: string;
  /** `Date.now()` when it happened. */
  at: number;
}

export type TreeListener = (event: TreeEvent) => void;

export interface SuperviseOptions {
  /** XState's inspect option, handed to the root actor: the inspector sees the whole tree as one system. */
  inspect?: InspectOption;
  /** Registry directory for connect-mode children (default: MULTIFROST_REGISTRY_DIR or ~/.multifrost). */
  registryDir?: string;
}

/** What a supervisor needs from each of its children. */
interface SupervisedNode {
  readonly id: string;
  readonly path: string;
  /** Resolves when ready; rejects when it cannot start. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The supervisor's order to restart now (a sibling went down). */
  restart(reason: string): Promise<void>;
  /** Nodes below (for lookups). */
  readonly descendants: readonly SupervisedNode[];
}

/** How a supervisor hears from its children and reaches the tree. */
interface NodeContext {
  path: string;
  parentActor: AnyActorRef | undefined;
  emit: TreeListener;
  registryDir: string | undefined;
  /** The child went down by itself (crash, hang, vanished) and is restarting or failed. */
  onDown(node: SupervisedNode, reason: string, restarting: boolean): void;
  /** Children were added or removed (a pool resized): lookups must be rebuilt. */
  onReshaped(): void;
}


/** A worker under supervision: a ParentWorker that restarts itself, reporting its downs upward. */
class WorkerNode implements SupervisedNode {
  readonly id: string;
  readonly path: string;
  readonly worker: ParentWorker;
  readonly descendants: readonly SupervisedNode[] = [];
  /** Transitions the supervisor caused itself (start, stop, ordered restart) are not downs. */
  #ordered = 0;

  constructor(spec: WorkerSpec, context: NodeContext) {
    this.id = spec.id;
    this.path = `${context.path}/${spec.id}`;
    this.worker = createWorker(spec, context, this.path);
    this.worker.on("state", (change) => this.#onState(change, context));
  }

  start(): Promise<void> {
    return this.#order(() => this.worker.start());
  }

  stop(): Promise<void> {
    return this.#order(() => this.worker.stop());
  }

  restart(reason: string): Promise<void> {
    return this.#order(() => this.worker.restart(reason, true));
  }

  async #order(action: () => Promise<void>): Promise<void> {
    this.#ordered++;
    try {
      await action();
    } finally {
      this.#ordered--;
    }
  }

  #onState(change: StateChange, context: NodeContext): void {
    context.emit({ path: this.path, kind: "worker", from: change.from, to: change.to, reason: change.reason, at: change.at });
    // A worker that went down restarts by itself (its backoff); the supervisor counts it and
    // restarts siblings per its strategy. Going to failed/stopped instead means a temporary
    // child crashed or a transient one exited cleanly: OTP leaves those alone.
    if (this.#ordered === 0 && LIVE.has(change.from) && change.to === "restarting") context.onDown(this, change.reason, true);
  }
}

function createWorker(spec: WorkerSpec, context: NodeContext, path: string): ParentWorker {
  const { id: _id, type: _type, spawn, executable, connect, ...settings } = spec;
  const options: SpawnOptions & { registryDir?: string } = {
    ...settings,
    name: path,
    autoRestart: true,
    // The supervisor's intensity limits restarts, not the worker's own count.
    maxRestartAttempts: Infinity,
    parentActor: context.parentActor,
    registryDir: settings.registryDir ?? context.registryDir,
  };
  if (spawn !== undefined) return ParentWorker.spawn(spawn, executable ?? "node", options);
  return ParentWorker.forService(connect!, options);
}

/**
 * A supervisor (DESIGN §5): starts its children in order, stops them in reverse, and when one
 * goes down applies its strategy — one_for_one (only that child restarts), one_for_all (every
 * sibling restarts too), rest_for_one (the siblings started after it restart too) — until more
 * than `intensity` restarts happen within `period`; then it stops its children and fails, which
 * its own supervisor sees as a child going down.
 */
export class Supervisor implements SupervisedNode {
  readonly id: string;
  readonly path: string;
  readonly strategy: Strategy;
  readonly children: readonly SupervisedNode[];
  readonly actor: Actor<typeof supervisorMachine>;
  readonly #context: NodeContext;
  readonly #intensity: RestartIntensity;
  readonly #intensityText: string;
  readonly #kind: TreeEvent["kind"];
  readonly #parallelStart: boolean;
  #state: SupervisorState = "idle";
  readonly #waiters = new StateWaiters<SupervisorState>();
  #ordered = 0;

  constructor(
    spec: SupervisorSpec | { id: string; strategy?: Strategy; intensity?: number; period?: number },
    context: NodeContext,
    options: {
      inspect?: InspectOption;
      kind?: TreeEvent["kind"];
      children?: (self: NodeContext) => SupervisedNode[];
      /** Start the children all at once (a pool's identical workers), not one after another. */
      parallelStart?: boolean;
    } = {},
  ) {
    this.id = spec.id;
    this.path = context.path === "" ? spec.id : `${context.path}/${spec.id}`;
    this.strategy = spec.strategy ?? "one_for_one";
    this.#context = context;
    this.#kind = options.kind ?? "supervisor";
    this.#parallelStart = options.parallelStart ?? false;
    const intensity = spec.intensity ?? DEFAULT_INTENSITY;
    const period = spec.period ?? DEFAULT_PERIOD_MS;
    this.#intensity = new RestartIntensity(intensity, period);
    this.#intensityText = `more than ${intensity} restarts within ${period} ms`;

    const machine = supervisorMachine.provide({
      actors: {
        startChildren: fromPromise(({ signal }) => this.#startChildren(signal)),
        stopChildren: fromPromise(() => this.#stopChildren()),
      },
    });
    this.actor = createActor(machine, {
      inspect: context.parentActor ? undefined : options.inspect,
      parent: context.parentActor,
    });
    this.actor.subscribe((snapshot) => {
      const to = snapshot.value as SupervisorState;
      if (to === this.#state) return;
      const from = this.#state;
      this.#state = to;
      context.emit({ path: this.path, kind: this.#kind, from, to, reason: snapshot.context.reason, at: Date.now() });
      this.#waiters.notify(to);
      if (to === "failed" && this.#ordered === 0 && from === "failing") {
        const reason = snapshot.context.reason;
        // Escalate outside this transition: the parent's reaction may restart this supervisor.
        queueMicrotask(() => context.onDown(this, reason, false));
      }
    });
    this.actor.start();

    const childContext: NodeContext = {
      path: this.path,
      parentActor: this.actor,
      emit: context.emit,
      registryDir: context.registryDir,
      onDown: (node, reason, restarting) => this.#onChildDown(node, reason, restarting),
      onReshaped: context.onReshaped,
    };
    this.children = options.children
      ? options.children(childContext)
      : (spec as SupervisorSpec).children.map((child) => createNode(child, childContext));
  }

  get state(): SupervisorState {
    return this.#state;
  }

  get descendants(): readonly SupervisedNode[] {
    return this.children.flatMap((child) => [child, ...child.descendants]);
  }

  /** Starts the children in order, each ready before the next. */
  start(): Promise<void> {
    if (this.#state === "running") return Promise.resolve();
    const sending = this.#state !== "starting";
    const started = this.#waiters.until((state) => {
      if (state === "running") return true;
      if (state === "failed" || state === "stopped") {
        throw new SupervisorError(this.path, this.actor.getSnapshot().context.reason);
      }
      return false;
    }, sending ? undefined : { state: this.#state });
    if (sending) this.actor.send({ type: "START" });
    return started;
  }

  /** Stops the children in reverse start order. */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    this.#ordered++;
    const stopped = this.#waiters.until((state) => {
      // Giving up already stops the children; a failed supervisor then just becomes stopped.
      if (state === "failed") this.actor.send({ type: "STOP" });
      return state === "stopped";
    }).finally(() => this.#ordered--);
    this.actor.send({ type: "STOP" });
    return stopped;
  }

  /** Its parent's order: stop everything, start again. */
  async restart(reason: string): Promise<void> {
    this.#ordered++;
    try {
      if (this.#state !== "failed") {
        const stopped = this.#waiters.until((state) => state === "stopped");
        this.actor.send({ type: "STOP", reason });
        await stopped;
      }
      await this.start();
    } finally {
      this.#ordered--;
    }
  }

  async #startChildren(signal: AbortSignal): Promise<void> {
    this.#intensity.reset();
    if (this.#parallelStart) {
      await Promise.all(this.children.map((child) => child.start()));
      return;
    }
    for (const child of this.children) {
      if (signal.aborted) return; // stopped meanwhile
      await child.start();
    }
  }

  async #stopChildren(): Promise<void> {
    for (const child of [...this.children].reverse()) {
      await child.stop().catch(() => undefined);
    }
  }

  #onChildDown(child: SupervisedNode, reason: string, restarting: boolean): void {
    if (this.#state !== "running") return;
    if (this.#intensity.record()) {
      this.actor.send({ type: "GIVE_UP", reason: `${this.#intensityText} (last: ${child.id}, ${reason})` });
      return;
    }
    this.actor.send({ type: "CHILD_RESTARTED", child: child.id, reason });
    const index = this.children.indexOf(child);
    const siblings =
      this.strategy === "one_for_all"
        ? this.children.filter((other) => other !== child)
        : this.strategy === "rest_for_one"
          ? this.children.slice(index + 1)
          : [];
    void this.#restart(restarting ? undefined : child, siblings, `${this.strategy}: ${child.id} went down (${reason})`);
  }

  /** Restarts `failed` (a child that does not restart itself) and then `siblings`, in start order. */
  async #restart(failed: SupervisedNode | undefined, siblings: readonly SupervisedNode[], reason: string): Promise<void> {
    try {
      if (failed) await failed.restart(reason);
      for (const sibling of siblings) {
        if (this.#state !== "running") return;
        await sibling.restart(reason);
      }
    } catch (error) {
      if (this.#state === "running") {
        this.actor.send({ type: "GIVE_UP", reason: `could not restart: ${errorSummary(error)}` });
      }
    }
  }
}

/**
 * A dynamic pool of identical workers under one_for_one supervision: calls through its handle
 * go to one live worker, picked round-robin or least-busy; `resize()` grows or shrinks it within
 * `maxChildren`.
 */
export class Pool extends Supervisor {
  readonly maxChildren: number;
  readonly #spec: PoolSpec;
  readonly #workers: WorkerNode[];
  #childContext: NodeContext | undefined;
  #next = 0;
  #serial = 0;
  readonly call: CallProxy<DynamicFunctions>;

  constructor(spec: PoolSpec, context: NodeContext) {
    const workers: WorkerNode[] = [];
    let childContext: NodeContext | undefined;
    super({ id: spec.id, strategy: "one_for_one", intensity: spec.intensity, period: spec.period }, context, {
      kind: "pool",
      parallelStart: true,
      children: (self) => {
        childContext = self;
        for (let i = 0; i < (spec.size ?? 1); i++) workers.push(new WorkerNode(poolMember(spec, i + 1), self));
        return [...workers];
      },
    });
    this.#spec = spec;
    this.#workers = workers;
    this.#serial = workers.length;
    this.#childContext = childContext;
    this.maxChildren = spec.maxChildren ?? spec.size ?? 1;
    this.call = createCallProxy((fn, args, options) => this.invoke(fn, args, options));
  }

  get size(): number {
    return this.#workers.length;
  }

  get workers(): readonly ParentWorker[] {
    return this.#workers.map((node) => node.worker);
  }

  /** Calls `fn` on one worker of the pool. */
  invoke<T = unknown>(functionName: string, args: unknown[], options?: CallOptions): Promise<T> {
    const worker = this.#pick();
    if (worker === undefined) return Promise.reject(new WorkerNotRunningError(this.path, `pool has no live worker (state: ${this.state})`));
    return worker.invoke<T>(functionName, args, options);
  }

  /** Grows or shrinks the pool to `size` workers (new ones are started, surplus ones stopped, newest first). */
  async resize(size: number): Promise<void> {
    if (!Number.isInteger(size) || size < 0 || size > this.maxChildren) {
      throw new InvalidArgumentError(`${this.path}: size must be an integer from 0 to maxChildren (${this.maxChildren}), got ${String(size)}`);
    }
    const children = this.children as SupervisedNode[];
    while (this.#workers.length < size) {
      const node = new WorkerNode(poolMember(this.#spec, ++this.#serial), this.#childContext!);
      this.#workers.push(node);
      children.push(node);
      this.#childContext!.onReshaped();
      if (this.state === "running") await node.start();
    }
    while (this.#workers.length > size) {
      const node = this.#workers.pop()!;
      children.splice(children.indexOf(node), 1);
      this.#childContext!.onReshaped();
      await node.stop();
    }
  }

  #pick(): ParentWorker | undefined {
    const workers = this.#workers;
    const count = workers.length;
    if (this.#spec.select === "least-busy") {
      let best: ParentWorker | undefined;
      for (const { worker } of workers) {
        if (LIVE.has(worker.state) && (best === undefined || worker.pendingCalls < best.pendingCalls)) best = worker;
      }
      return best;
    }
    for (let i = 0; i < count; i++) {
      const worker = workers[(this.#next + i) % count]!.worker;
      if (worker.state === "connected" || worker.state === "degraded") {
        this.#next = (this.#next + i + 1) % count;
        return worker;
      }
    }
    // Nobody is up: hand the call to a restarting worker, whose buffer holds it.
    return workers[this.#next++ % Math.max(1, count)]?.worker;
  }
}

/** The spec of a pool's n-th worker. */
function poolMember(spec: PoolSpec, n: number): WorkerSpec {
  const { type: _type, size: _size, maxChildren: _max, select: _select, intensity: _intensity, period: _period, ...settings } = spec;
  return { ...settings, type: "worker", id: `${spec.id}-${n}` };
}

function createNode(spec: unknown, context: NodeContext): SupervisedNode {
  const path = `${context.path}/${(spec as { id?: unknown })?.id ?? "?"}`;
  const child = resolveChild(spec, path);
  switch (child.type) {
    case "worker":
      return new WorkerNode(child.spec, context);
    case "pool":
      return new Pool(child.spec, context);
    case "supervisor":
      return new Supervisor(child.spec, context);
  }
}

/** A started (or startable) supervision tree: `supervise(spec)` returns one. */
export class SupervisionTree {
  readonly root: Supervisor;
  readonly #listeners = new Set<TreeListener>();
  /** get() results by the id or path asked for; a call through `tree.get(id)` costs one Map lookup. */
  readonly #handles = new Map<string, { call: CallProxy<DynamicFunctions> }>();

  constructor(spec: SupervisorSpec | Omit<SupervisorSpec, "type">, options: SuperviseOptions = {}) {
    checkSupervisor(spec as unknown as Record<string, unknown>, String((spec as { id?: unknown }).id ?? "root"));
    const context: NodeContext = {
      path: "",
      parentActor: undefined,
      registryDir: options.registryDir,
      emit: (event) => {
        for (const listener of this.#listeners) listener(event);
      },
      onDown: () => undefined, // the root has nobody to escalate to; its "failed" state says it all
      onReshaped: () => this.#handles.clear(),
    };
    this.root = new Supervisor({ type: "supervisor", ...spec }, context, { inspect: options.inspect });
  }

  get state(): SupervisorState {
    return this.root.state;
  }

  /** Starts every child in order; resolves when all are ready. */
  start(): Promise<void> {
    return this.root.start();
  }

  /** Stops everything in reverse start order; no process is left. */
  stop(): Promise<void> {
    return this.root.stop();
  }

  /** Every transition of every actor in the tree. Returns an unsubscribe function. */
  subscribe(listener: TreeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A handle for a worker or pool, found by id or by path ("pipeline/fetch", "root/pipeline/fetch").
   * It stays valid across restarts: calls made while the worker restarts wait for it.
   */
  get<T extends object = DynamicFunctions>(idOrPath: string): { call: CallProxy<T> } {
    let handle = this.#handles.get(idOrPath);
    if (handle === undefined) {
      const node = this.#find(idOrPath);
      if (node instanceof WorkerNode) handle = node.worker.handle();
      else if (node instanceof Pool) handle = { call: node.call };
      else throw new SupervisorError(node.path, "is a supervisor; get() takes a worker or a pool");
      this.#handles.set(idOrPath, handle);
    }
    return handle as unknown as { call: CallProxy<T> };
  }

  /** The ParentWorker of a worker (its pid, state, events…). */
  worker(idOrPath: string): ParentWorker {
    const node = this.#find(idOrPath);
    if (node instanceof WorkerNode) return node.worker;
    throw new SupervisorError(node.path, "is not a worker");
  }

  /** A pool, to resize it or see its workers. */
  pool(idOrPath: string): Pool {
    const node = this.#find(idOrPath);
    if (node instanceof Pool) return node;
    throw new SupervisorError(node.path, "is not a pool");
  }

  /** A supervisor (or pool) in the tree, by id or path; the root by its id. */
  supervisor(idOrPath: string): Supervisor {
    const node = idOrPath === this.root.id ? this.root : this.#find(idOrPath);
    if (node instanceof Supervisor) return node;
    throw new SupervisorError(node.path, "is not a supervisor");
  }

  #find(idOrPath: string): SupervisedNode {
    const all = this.root.descendants;
    const rootPrefix = `${this.root.id}/`;
    const path = idOrPath.startsWith(rootPrefix) ? idOrPath : `${rootPrefix}${idOrPath}`;
    const byPath = all.find((node) => node.path === path);
    if (byPath) return byPath;
    const byId = all.filter((node) => node.id === idOrPath);
    if (byId.length === 1) return byId[0]!;
    if (byId.length > 1) {
      throw new SupervisorError(this.root.path, `'${idOrPath}' is ambiguous (${byId.map((node) => node.path).join(", ")}); use a path`);
    }
    throw new SupervisorError(this.root.path, `has no child '${idOrPath}'`);
  }
}

/** Builds a supervision tree from plain data (see `worker()`, `supervisor()`, `pool()`); call `start()` on it. */
export function supervise(spec: SupervisorSpec | Omit<SupervisorSpec, "type">, options: SuperviseOptions = {}): SupervisionTree {
  return new SupervisionTree(spec, options);
}
