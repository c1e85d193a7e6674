// The library side of the side-by-side benchmark: a ParentWorker running
// bench/workers/echo-worker.mjs, shaped like startRawPeer() so both can be measured alike.

import { fileURLToPath } from "node:url";
import { ParentWorker } from "multifrost";

export const ECHO_WORKER = fileURLToPath(new URL("../workers/echo-worker.mjs", import.meta.url));

/** Child output goes to stderr, so it never mixes into the Markdown report on stdout. */
function onOutput(stream, line, name) {
  process.stderr.write(`[${name} ${stream}] ${line}\n`);
}

/** A ParentWorker for `script`; child output is routed to stderr. */
export function spawnOurWorker(script = ECHO_WORKER, options = {}) {
  return ParentWorker.spawn(script, "node", { onOutput, ...options });
}

/**
 * Spawn the echo worker through the library and wait for `start()` (first heartbeat answered).
 * Calls go through `worker.handle().call.<fn>(...)`, as an application would write them.
 *
 * @returns {Promise<{ add(): Promise<unknown>, echo(x: unknown): Promise<unknown>,
 *   call(fn: string, args: unknown[]): Promise<unknown>, stop(): Promise<void>, pid: number|undefined,
 *   worker: import("multifrost").ParentWorker }>}
 */
export async function startOurPeer(script = ECHO_WORKER, options = {}) {
  const worker = spawnOurWorker(script, options);
  const handle = worker.handle();
  try {
    await handle.start();
  } catch (err) {
    await worker.stop().catch(() => undefined);
    throw err;
  }
  return {
    add: () => handle.call.add(1, 2),
    echo: (x) => handle.call.echo(x),
    call: (fn, args) => handle.call[fn](...args),
    stop: () => worker.stop(),
    pid: worker.pid,
    worker,
  };
}
