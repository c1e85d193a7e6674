import type { ParentWorker } from "../../parent/parent-worker.js";
import { isLive, type Balancer } from "./balancer.js";

/** Each call goes to the next live member after the previous pick. */
export class RoundRobin implements Balancer {
  #next = 0;

  pick(members: readonly ParentWorker[], exclude?: ParentWorker): ParentWorker | undefined {
    const count = members.length;
    for (let i = 0; i < count; i++) {
      const index = (this.#next + i) % count;
      const worker = members[index]!;
      if (worker !== exclude && isLive(worker)) {
        this.#next = (index + 1) % count;
        return worker;
      }
    }
    return undefined;
  }
}
