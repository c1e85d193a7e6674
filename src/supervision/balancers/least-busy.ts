import type { ParentWorker } from "../../parent/parent-worker.js";
import { isLive, type Balancer } from "./balancer.js";

/** Each call goes to the live member with the fewest calls in flight (the first of equals). */
export class LeastBusy implements Balancer {
  pick(members: readonly ParentWorker[], exclude?: ParentWorker): ParentWorker | undefined {
    let best: ParentWorker | undefined;
    for (const worker of members) {
      if (worker === exclude || !isLive(worker)) continue;
      if (best === undefined || worker.pendingCalls < best.pendingCalls) best = worker;
    }
    return best;
  }
}
