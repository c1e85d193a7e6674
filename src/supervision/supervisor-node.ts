import { createActor, fromPromise, type Actor } from "xstate";
import { StateWaiters } from "../actors/state-waiters.js";
import { RestartIntensity } from "../core/restart-intensity.js";
import { siblingsToRestart, type Strategy } from "../core/strategy.js";
import { SupervisorError } from "../errors.js";
import { supervisorMachine, type SupervisorState } from "../machines/supervisor.js";
import { createLogSink, LogEvent } from "../observability/logger.js";
import type { InspectOption } from "../parent/options.js";
import type { BringUpOutcome, NodeContext, SupervisedNode, TreeEvent } from "./node.js";

export interface SupervisorSettings {
  id: string;
  strategy: Strategy;
  intensity: number;
  periodMs: number;
}

export interface SupervisorBuild {
  inspect?: InspectOption;
  kind?: TreeEvent["kind"];
  /** Creates the children, given the context they report to. */
  children: (self: NodeContext) => SupervisedNode[];
  /** Start the children all at once (a pool's identical workers), not one after another. */
  parallelStart?: boolean;
}

/**
 * A supervisor (DESIGN §5, OTP semantics). It starts its children in order and stops them in
 * reverse. When one goes down — it crashed, hung, vanished, or a restart attempt failed — the
 * supervisor decides: it counts the restart against `intensity` within `periodMs` (every attempt
 * counts, as in OTP), stops the siblings its strategy names (reverse order), waits the child's
 * backoff, then brings the child and those siblings up in start order. More than `intensity`
 * restarts within `periodMs`: it stops its children and fails, which its own supervisor sees as
 * this child going down.
 */
export class Supervisor implements SupervisedNode {
  readonly id: string;
  readonly path: string;
  readonly strategy: Strategy;
  readonly children: SupervisedNode[];
  readonly actor: Actor<typeof supervisorMachine>;
  readonly #intensity: RestartIntensity;
  readonly #intensityText: string;
  readonly #parallelStart: boolean;
  readonly #waiters = new StateWaiters<SupervisorState>();
  #state: SupervisorState = "idle";
  #ordered = 0;
  /** Restart work runs one job at a time, in the order the downs came. */
  #restarts: Promise<void> = Promise.resolve();
  /** Downs reported while starting, handled once running. */
  #downsWhileStarting: Array<[SupervisedNode, string]> = [];
  /** Aborted when the supervisor leaves `running`: pending backoffs and restarts stop. */
  #running = new AbortController();

  constructor(settings: SupervisorSettings, context: NodeContext, build: SupervisorBuild) {
    this.id = settings.id;
    this.path = context.path === "" ? settings.id : `${context.path}/${settings.id}`;
    this.strategy = settings.strategy;
    this.#parallelStart = build.parallelStart ?? false;
    this.#intensity = new RestartIntensity(settings.intensity, settings.periodMs);
    this.#intensityText = `more than ${settings.intensity} restarts within ${settings.periodMs} ms`;
    const kind = build.kind ?? "supervisor";
    const log = createLogSink(context.logger, context.logLevel);

    const machine = supervisorMachine.provide({
      actors: {
        startChildren: fromPromise(({ signal }) => this.#startChildren(signal)),
        stopChildren: fromPromise(() => this.#stopChildren()),
      },
    });
    this.actor = createActor(machine, {
      inspect: context.parentActor ? undefined : build.inspect,
      parent: context.parentActor,
      systemId: this.path,
      // The name the Stately inspector shows (it does not read system ids).
      id: this.path,
    });
    this.actor.subscribe((snapshot) => {
      const to = snapshot.value as SupervisorState;
      if (to === this.#state) return;
      const from = this.#state;
      this.#state = to;
      if (to !== "running" && to !== "starting") {
        this.#running.abort();
        this.#downsWhileStarting = [];
      }
      context.emit({ path: this.path, kind, from, to, reason: snapshot.context.reason, at: Date.now() });
      this.#waiters.notify(to);
      if (to === "running" && this.#downsWhileStarting.length > 0) {
        const downs = this.#downsWhileStarting;
        this.#downsWhileStarting = [];
        queueMicrotask(() => {
          for (const [child, reason] of downs) this.#onChildDown(child, reason);
        });
      }
      if (to === "failed" && this.#ordered === 0 && from === "failing") {
        const reason = snapshot.context.reason;
        log?.log("error", { event: LogEvent.SUPERVISOR_ESCALATE, supervisor: this.path, reason, from, to }, `${this.path}: gave up (${reason}); escalating`);
        // Escalate outside this transition: the parent's reaction may restart this supervisor.
        queueMicrotask(() => context.onDown(this, reason));
      }
    });
    this.actor.start();

    this.children = build.children({
      path: this.path,
      parentActor: this.actor,
      emit: context.emit,
      registryDir: context.registryDir,
      registry: context.registry,
      logger: context.logger,
      logLevel: context.logLevel,
      onDown: (node, reason) => this.#onChildDown(node, reason),
      onReshaped: context.onReshaped,
    });
  }

  get state(): SupervisorState {
    return this.#state;
  }

  /** Why the supervisor is in its state (e.g. why it failed). */
  get reason(): string {
    return this.actor.getSnapshot().context.reason;
  }

  get descendants(): readonly SupervisedNode[] {
    return this.children.flatMap((child) => [child, ...child.descendants]);
  }

  /** Starts the children in order, each ready before the next. */
  start(): Promise<void> {
    if (this.#state === "running") return Promise.resolve();
    const sending = this.#state !== "starting";
    const started = this.#waiters.until(
      (state) => {
        if (state === "running") return true;
        if (state === "failed" || state === "stopped") throw new SupervisorError(this.path, this.reason);
        return false;
      },
      sending ? undefined : { state: this.#state },
    );
    if (sending) this.actor.send({ type: "START" });
    return started;
  }

  /** Stops the children in reverse start order. */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    this.#ordered++;
    const stopped = this.#waiters
      .until((state) => {
        // Giving up already stops the children; a failed supervisor then just becomes stopped.
        if (state === "failed") this.actor.send({ type: "STOP" });
        return state === "stopped";
      })
      .finally(() => this.#ordered--);
    this.actor.send({ type: "STOP" });
    return stopped;
  }

  /** A sibling went down: a nested supervisor stops (its workers' calls are refused meanwhile). */
  hold(reason: string): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped" || this.#state === "failed") return Promise.resolve();
    this.#ordered++;
    const stopped = this.#waiters.until((state) => state === "stopped" || state === "failed").finally(() => this.#ordered--);
    this.actor.send({ type: "STOP", reason });
    return stopped;
  }

  /** A nested supervisor restarts at once: its own children have their backoffs. */
  restartDelayMs(): number {
    return 0;
  }

  /** Its parent's order: start again (after failing, or after being stopped for a sibling). */
  async bringUp(reason: string): Promise<BringUpOutcome> {
    this.#ordered++;
    try {
      // Giving up takes a moment (its children stop first): let it finish.
      if (this.#state === "failing") await this.#waiters.until((state) => state !== "failing", { state: this.#state });
      if (this.#state !== "failed" && this.#state !== "stopped" && this.#state !== "idle") {
        const stopped = this.#waiters.until((state) => state === "stopped");
        this.actor.send({ type: "STOP", reason });
        await stopped;
      }
      await this.start();
      return { up: true };
    } catch (error) {
      return { up: false, reason: error instanceof Error ? error.message : String(error) };
    } finally {
      this.#ordered--;
    }
  }

  async #startChildren(signal: AbortSignal): Promise<void> {
    this.#intensity.reset();
    this.#running = new AbortController();
    if (this.#parallelStart) {
      await Promise.all(this.children.map((child) => child.start()));
      return;
    }
    for (const child of this.children) {
      if (signal.aborted) return; // stopped meanwhile
      await child.start();
    }
  }

  async #stopChildren(): Promise<void> {
    this.#running.abort();
    for (const child of [...this.children].reverse()) {
      await child.stop().catch(() => undefined);
    }
  }

  /** A child went down by itself, or an attempt to bring it up failed: every one counts. */
  #onChildDown(child: SupervisedNode, reason: string): void {
    if (!this.children.includes(child)) return; // removed meanwhile (a pool shrank)
    if (this.#state === "starting") {
      // As in OTP, a down during the start sequence is handled once it is done.
      this.#downsWhileStarting.push([child, reason]);
      return;
    }
    if (this.#state !== "running") return;
    if (this.#intensity.record()) {
      this.actor.send({ type: "GIVE_UP", reason: `${this.#intensityText} (last: ${child.id}, ${reason})` });
      return;
    }
    this.actor.send({ type: "CHILD_RESTARTED", child: child.id, reason });
    const index = this.children.indexOf(child);
    const siblings = siblingsToRestart(this.strategy, this.children.length, index).map((i) => this.children[i]!);
    const running = this.#running.signal;
    const job = () => this.#restart(child, siblings, `${this.strategy}: ${child.id} went down (${reason})`, running);
    this.#restarts = this.#restarts.then(job, job);
  }

  /** OTP's order: stop the siblings (reverse), wait the child's backoff, bring everything up in start order. */
  async #restart(down: SupervisedNode, siblings: readonly SupervisedNode[], reason: string, running: AbortSignal): Promise<void> {
    if (running.aborted) return;
    for (const sibling of [...siblings].reverse()) await sibling.hold(reason).catch(() => undefined);
    await abortableDelay(down.restartDelayMs(), running);
    const order = [down, ...siblings].sort((a, b) => this.children.indexOf(a) - this.children.indexOf(b));
    for (const node of order) {
      if (running.aborted) return;
      if (!this.children.includes(node)) continue; // removed meanwhile (a pool shrank)
      const outcome = await node.bringUp(reason);
      if (!outcome.up) {
        // Counted like any down; that decision restarts what this one did not reach.
        this.#onChildDown(node, outcome.reason);
        return;
      }
    }
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
