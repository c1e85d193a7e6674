import { SupervisorError } from "../errors.js";
import type { SupervisorState } from "../machines/supervisor.js";
import type { InspectOption } from "../parent/options.js";
import type { RegistrySetting } from "../registry/index.js";
import type { Logger, LogLevelOption } from "../observability/logger.js";
import type { CallProxy, DynamicFunctions } from "../parent/call-proxy.js";
import type { ParentWorker } from "../parent/parent-worker.js";
import type { NodeContext, SupervisedNode, TreeListener } from "./node.js";
import { Pool } from "./pool.js";
import { ServicePool } from "./service-pool.js";
import { checkTree, resolveChild } from "./check-spec.js";
import { DEFAULT_INTENSITY, DEFAULT_PERIOD_MS, type SupervisorSpec } from "./spec.js";
import { Supervisor } from "./supervisor-node.js";
import { serveHealth, type HealthOptions, type HealthServer } from "../observability/health.js";
import { serveDashboard, type DashboardOptions, type DashboardServer } from "../dashboard/server.js";
import { snapshotOf, type SupervisorSnapshot } from "./tree-snapshot.js";
import { WorkerNode } from "./worker-node.js";

export interface SuperviseOptions {
  /** XState's inspect option, handed to the root actor: the inspector sees the whole tree as one system. */
  inspect?: InspectOption;
  /** Registry directory for connect-mode children (default: MULTIFROST_REGISTRY_DIR or ~/.multifrost). */
  registryDir?: string;
  /**
   * The registry of connect-mode children and service pools: a backend or a URL (`etcd://host:port[,…]`).
   * Default: `$MULTIFROST_REGISTRY`, else the file registry in `registryDir`.
   */
  registry?: RegistrySetting;
  /** A pino-compatible logger for the lifecycle events of every supervisor and worker (a worker spec's own `logger` wins). */
  logger?: Logger;
  /** The lowest level logged (a worker spec's own `logLevel` wins). Default: $MULTIFROST_LOG_LEVEL, else "info". */
  logLevel?: LogLevelOption;
}

function supervisorNode(spec: SupervisorSpec, context: NodeContext, inspect?: InspectOption): Supervisor {
  return new Supervisor(
    {
      id: spec.id,
      strategy: spec.strategy ?? "one_for_one",
      intensity: spec.intensity ?? DEFAULT_INTENSITY,
      periodMs: spec.periodMs ?? spec.period ?? DEFAULT_PERIOD_MS,
    },
    context,
    { inspect, children: (self) => spec.children.map((child) => createNode(child, self)) },
  );
}

function createNode(spec: unknown, context: NodeContext): SupervisedNode {
  const child = resolveChild(spec, `${context.path}/${String((spec as { id?: unknown })?.id ?? "?")}`);
  switch (child.type) {
    case "worker":
      return new WorkerNode(child.spec, context);
    case "pool":
      return child.spec.service === undefined ? new Pool(child.spec, context) : new ServicePool(child.spec, context);
    case "supervisor":
      return supervisorNode(child.spec, context);
  }
}

/** A started (or startable) supervision tree: `supervise(spec)` returns one. */
export class SupervisionTree {
  readonly root: Supervisor;
  readonly #listeners = new Set<TreeListener>();
  /** get() results by the id or path asked for; a call through `tree.get(id)` costs one Map lookup. */
  readonly #handles = new Map<string, { call: CallProxy<DynamicFunctions> }>();

  constructor(spec: SupervisorSpec | Omit<SupervisorSpec, "type">, options: SuperviseOptions = {}) {
    const checked = checkTree(spec);
    const context: NodeContext = {
      path: "",
      parentActor: undefined,
      registryDir: options.registryDir,
      registry: options.registry,
      logger: options.logger,
      logLevel: options.logLevel,
      emit: (event) => {
        for (const listener of this.#listeners) listener(event);
      },
      onDown: () => undefined, // the root has nobody to escalate to; its "failed" state says it all
      onReshaped: () => this.#handles.clear(),
    };
    this.root = supervisorNode(checked, context, options.inspect);
  }

  get state(): SupervisorState {
    return this.root.state;
  }

  /** Starts every child in order; resolves when all are ready, rejects with SupervisorError (and why) when the root fails. */
  start(): Promise<void> {
    return this.root.start();
  }

  /** Stops everything in reverse start order; resolves when no process of the tree is left. */
  stop(): Promise<void> {
    return this.root.stop();
  }

  /** The whole tree's state and figures as plain JSON: supervisors with their children, workers with their calls, latency, heartbeat, circuit, CPU/RSS. */
  snapshot(): SupervisorSnapshot {
    return snapshotOf(this.root) as SupervisorSnapshot;
  }

  /** Serves /healthz, /readyz, /metrics (Prometheus) and /tree (the snapshot) for the whole tree; 127.0.0.1 by default. */
  serveHealth(options: HealthOptions = {}): Promise<HealthServer> {
    const workers = (): WorkerNode[] => this.root.descendants.filter((node): node is WorkerNode => node instanceof WorkerNode);
    return serveHealth(
      {
        snapshot: () => this.snapshot(),
        workers: () => workers().map((node) => ({ snapshot: node.worker.snapshot(), latency: node.worker.metrics.latency })),
        ready: () => this.root.state === "running",
      },
      options,
    );
  }

  /** Serves the live dashboard (the tree, each worker's machine and transitions, over SSE); 127.0.0.1 by default. */
  serveDashboard(options: DashboardOptions = {}): Promise<DashboardServer> {
    return serveDashboard({ snapshot: () => this.snapshot(), subscribe: (listener) => this.subscribe(listener) }, options);
  }

  /** Every transition of every actor in the tree. Returns an unsubscribe function. */
  subscribe(listener: TreeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A handle for a worker or pool, found by path ("pipeline/fetch", "root/pipeline/fetch") or by
   * id when only one node has it. It stays valid across restarts: calls made while the worker
   * restarts wait for it.
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
    if (!idOrPath.includes("/")) {
      const byId = all.filter((node) => node.id === idOrPath);
      if (byId.length === 1) return byId[0]!;
      if (byId.length > 1) {
        throw new SupervisorError(this.root.path, `'${idOrPath}' is ambiguous (${byId.map((node) => node.path).join(", ")}); use a path`);
      }
    }
    throw new SupervisorError(this.root.path, `has no child '${idOrPath}'`);
  }
}

/** Builds a supervision tree from plain data (see `worker()`, `supervisor()`, `pool()`); call `start()` on it. */
export function supervise(spec: SupervisorSpec | Omit<SupervisorSpec, "type">, options: SuperviseOptions = {}): SupervisionTree {
  return new SupervisionTree(spec, options);
}
