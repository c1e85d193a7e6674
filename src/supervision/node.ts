import type { RegistrySetting } from "../registry/index.js";
import type { AnyActorRef } from "xstate";
import type { Logger, LogLevelOption } from "../observability/logger.js";

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

/** What came of a supervisor's order to bring a child (back) up. */
export type BringUpOutcome = { up: true } | { up: false; reason: string };

/** What a supervisor needs from each of its children (workers, pools, supervisors). */
export interface SupervisedNode {
  readonly id: string;
  readonly path: string;
  /** Resolves when ready; rejects when it cannot start. */
  start(): Promise<void>;
  /** Resolves when stopped and nothing of it is left. */
  stop(): Promise<void>;
  /**
   * The supervisor's order to (re)start a child that went down or that it stopped: settles with
   * `up: false` when this attempt failed (the supervisor counts it and decides again).
   */
  bringUp(reason: string): Promise<BringUpOutcome>;
  /**
   * The supervisor's order to take a child down because a sibling went down (one_for_all,
   * rest_for_one): a worker closes gracefully and waits (calls to it wait in its buffer); a
   * supervisor stops. `bringUp` brings it back.
   */
  hold(reason: string): Promise<void>;
  /** How long to wait before bringing it up again after it went down (its backoff). */
  restartDelayMs(): number;
  /** Nodes below (for lookups). */
  readonly descendants: readonly SupervisedNode[];
}

/** How a node hears from and reaches the tree above it. */
export interface NodeContext {
  path: string;
  parentActor: AnyActorRef | undefined;
  emit: TreeListener;
  registryDir: string | undefined;
  /** `supervise()`'s registry (a backend or URL) for connect-mode children with no registryDir of their own. */
  registry?: RegistrySetting | undefined;
  /** `supervise()`'s logger and level, for every node below that has none of its own. */
  logger?: Logger | undefined;
  logLevel?: LogLevelOption | undefined;
  /** The child went down by itself (crash, hang, vanished, a failed restart attempt); it waits for the supervisor. */
  onDown(node: SupervisedNode, reason: string): void;
  /** Children were added or removed (a pool resized): lookups must be rebuilt. */
  onReshaped(): void;
}
