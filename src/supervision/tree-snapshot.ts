import type { SupervisorState } from "../machines/supervisor.js";
import type { WorkerSnapshot } from "../parent/worker-snapshot.js";
import type { SupervisedNode } from "./node.js";
import { Pool } from "./pool.js";
import { Supervisor } from "./supervisor-node.js";
import { WorkerNode } from "./worker-node.js";

/** A supervisor's (or pool's) state and its children's, as plain JSON (`tree.snapshot()`, `/tree`). */
export interface SupervisorSnapshot {
  kind: "supervisor" | "pool";
  id: string;
  path: string;
  state: SupervisorState;
  reason: string;
  /** Child restarts it ordered or saw, over its life. */
  restarts: number;
  children: NodeSnapshot[];
}

export type NodeSnapshot = SupervisorSnapshot | WorkerSnapshot;

export function snapshotOf(node: SupervisedNode): NodeSnapshot {
  if (node instanceof WorkerNode) return node.worker.snapshot();
  if (node instanceof Supervisor) {
    return {
      kind: node instanceof Pool ? "pool" : "supervisor",
      id: node.id,
      path: node.path,
      state: node.state,
      reason: node.reason,
      restarts: node.actor.getSnapshot().context.restarts,
      children: node.children.map(snapshotOf),
    };
  }
  throw new Error(`no snapshot for ${node.path}`);
}

/** Every worker snapshot below `snapshot`, depth first. */
export function workersOf(snapshot: NodeSnapshot): WorkerSnapshot[] {
  return snapshot.kind === "worker" ? [snapshot] : snapshot.children.flatMap(workersOf);
}
