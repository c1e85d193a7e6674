import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { ParentWorker, type SpawnOptions } from "../../src/index.js";

/** Absolute path of a file in test/fixtures. */
export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/** The error a promise rejects with; fails the test if it resolves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary error fields
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`expected a rejection, got ${inspect(value)}`);
}

/**
 * `spawn` creates ParentWorkers with output silenced (options may override) and remembers them;
 * `stopAll` (for afterEach) stops every one, pass or fail.
 */
export function workerTracker(): {
  spawn(script: string, executable?: string | readonly string[], options?: SpawnOptions): ParentWorker;
  stopAll(): Promise<void>;
} {
  const workers: ParentWorker[] = [];
  return {
    spawn(script, executable = "node", options = {}) {
      const worker = ParentWorker.spawn(script, executable, { onOutput: () => {}, ...options });
      workers.push(worker);
      return worker;
    },
    async stopAll() {
      await Promise.all(workers.splice(0).map((worker) => worker.stop()));
    },
  };
}
