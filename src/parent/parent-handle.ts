import type { CallProxy, DynamicFunctions } from "./call-proxy.js";
import { createCallProxy } from "./call-proxy.js";
import type { ParentWorker } from "./parent-worker.js";

/**
 * A handle on a worker (v4 API): `start()`, `stop()` and `call.<fn>()`. Several handles may
 * share one worker; `stop()` through any of them stops it for all.
 */
export class ParentHandle<T extends object = DynamicFunctions> {
  readonly worker: ParentWorker;
  readonly call: CallProxy<T>;

  constructor(worker: ParentWorker) {
    this.worker = worker;
    this.call = createCallProxy<T>((fn, args, options) => worker.invoke(fn, args, options));
  }

  start(): Promise<void> {
    return this.worker.start();
  }

  stop(): Promise<void> {
    return this.worker.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.worker.stop();
  }
}
