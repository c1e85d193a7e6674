import type { ParentWorker } from "../../parent/parent-worker.js";

/**
 * How a pool picks the member for a call. A balancer sees every member and picks only among the
 * live ones (connected or degraded: not restarting, not behind an open circuit); `undefined`
 * means none is live.
 */
export interface Balancer {
  pick(members: readonly ParentWorker[], exclude?: ParentWorker): ParentWorker | undefined;
}

/** Whether a member takes calls now. */
export function isLive(worker: ParentWorker): boolean {
  const state = worker.state;
  return state === "connected" || state === "degraded";
}
