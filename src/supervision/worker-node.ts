import { backoffDelay, resolveBackoff, type BackoffOptions } from "../core/backoff.js";
import { errorSummary } from "../errors.js";
import { LIVE_STATES as LIVE, type ConnectionState } from "../machines/connection.js";
import type { ConnectOptions, SpawnOptions } from "../parent/options.js";
import { ParentWorker, type StateChange, type SupervisedOptions } from "../parent/parent-worker.js";
import type { BringUpOutcome, NodeContext, SupervisedNode } from "./node.js";
import type { WorkerSpec } from "./spec.js";

const OPENING: ReadonlySet<ConnectionState> = new Set(["spawning", "connecting"]);

/**
 * A worker under supervision: a ParentWorker whose connection machine never restarts by itself.
 * When it goes down it waits in `restarting` and this node tells the supervisor, which counts
 * the restart, waits the worker's backoff and orders `bringUp`.
 */
export class WorkerNode implements SupervisedNode {
  readonly id: string;
  readonly path: string;
  readonly worker: ParentWorker;
  readonly descendants: readonly SupervisedNode[] = [];
  readonly #backoff: BackoffOptions;
  /** Transitions the supervisor caused itself (start, stop, bring up) are not downs. */
  #ordered = 0;

  constructor(spec: WorkerSpec, context: NodeContext) {
    this.id = spec.id;
    this.path = `${context.path}/${spec.id}`;
    this.#backoff = resolveBackoff(spec.backoff);
    this.worker = createWorker(spec, context, this.path);
    this.worker.on("state", (change) => this.#onState(change, context));
  }

  start(): Promise<void> {
    return this.#order(() => this.worker.start());
  }

  stop(): Promise<void> {
    return this.#order(() => this.worker.stop());
  }

  hold(reason: string): Promise<void> {
    return this.#order(() => this.worker.hold(reason));
  }

  restartDelayMs(): number {
    return backoffDelay(Math.max(0, this.worker.recentRestarts - 1), this.#backoff);
  }

  /** Opens again (from `restarting`) or starts (from stopped/failed), and reports how it went; a live worker is left alone. */
  bringUp(reason: string): Promise<BringUpOutcome> {
    // Back already (a stale down, or the user restarted it): nothing to do.
    if (LIVE.has(this.worker.state)) return Promise.resolve({ up: true });
    return this.#order(
      () =>
        new Promise<BringUpOutcome>((resolve) => {
          const worker = this.worker;
          let opened = false;
          const onState = (change: StateChange) => {
            if (OPENING.has(change.to)) opened = true;
            let outcome: BringUpOutcome | undefined;
            if (LIVE.has(change.to)) outcome = { up: true };
            else if (change.to === "failed" || change.to === "stopped") outcome = { up: false, reason: change.reason };
            // A restart attempt that could not open waits in restarting again.
            else if (change.to === "restarting" && opened) outcome = { up: false, reason: change.reason };
            if (outcome === undefined) return;
            worker.off("state", onState);
            resolve(outcome);
          };
          worker.on("state", onState);
          // The state listener settles it first in every case but a refusal before any transition.
          worker.restart(reason, true).catch((error: unknown) => {
            worker.off("state", onState);
            resolve({ up: false, reason: errorSummary(error) });
          });
        }),
    );
  }

  async #order<T>(action: () => Promise<T>): Promise<T> {
    this.#ordered++;
    try {
      return await action();
    } finally {
      this.#ordered--;
    }
  }

  #onState(change: StateChange, context: NodeContext): void {
    context.emit({ path: this.path, kind: "worker", from: change.from, to: change.to, reason: change.reason, at: change.at });
    // Going to failed/stopped instead means a temporary child crashed or a transient one exited
    // cleanly: OTP leaves those alone.
    // An ordered restart (the user's restart(), a supervisor's hold) is not a down.
    if (this.#ordered === 0 && !change.ordered && LIVE.has(change.from) && change.to === "restarting") context.onDown(this, change.reason);
  }
}

function createWorker(spec: WorkerSpec, context: NodeContext, path: string): ParentWorker {
  const { id: _id, type: _type, spawn, executable, connect, ...settings } = spec;
  const options: SpawnOptions & SupervisedOptions & ConnectOptions = {
    ...settings,
    name: path,
    supervised: true,
    parentActor: context.parentActor,
    // A child's own registryDir wins over the tree's registry, which wins over the tree's registryDir.
    ...(settings.registryDir === undefined && context.registry !== undefined ? { registry: context.registry } : {}),
    registryDir: settings.registryDir ?? context.registryDir,
    logger: settings.logger ?? context.logger,
    logLevel: settings.logLevel ?? context.logLevel,
  };
  if (spawn !== undefined) return ParentWorker.spawn(spawn, executable, options);
  return ParentWorker.forService(connect!, options);
}
