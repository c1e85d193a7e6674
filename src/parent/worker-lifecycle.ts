import { createActor, fromPromise, type Actor, type AnyActorRef } from "xstate";
import { StateWaiters } from "../actors/state-waiters.js";
import type { DealerChannel } from "../actors/zmq-channel.js";
import { WorkerExitedError, WorkerNotRunningError, WorkerStartError } from "../errors.js";
import {
  connectionMachine,
  connectionStateOf,
  LIVE_STATES as LIVE,
  type CloseInput,
  type ConnectionEvent,
  type ConnectionInput,
  type ConnectionState,
} from "../machines/connection.js";
import type { LogSink } from "../observability/logger.js";
import { WorkerLog } from "../observability/worker-log.js";
import type { CallClient } from "./call-client.js";
import type { InspectOption } from "./options.js";
import type { Transport } from "./transport.js";

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  reason: string;
  /** Caused by an order through the API (`restart()`, a supervisor holding a sibling), not by a down. */
  ordered?: boolean;
  /** `Date.now()` when it happened. */
  at: number;
}

/** What the lifecycle needs from its ParentWorker. */
export interface LifecycleHost {
  readonly name: string;
  readonly client: CallClient;
  readonly transport: Transport;
  /** A supervisor decides restarts: a down connection waits for `restart()`. */
  readonly supervised: boolean;
  readonly heartbeatTimeoutMs: number;
  /** The connection moved (the ParentWorker's `state` event). */
  changed(change: StateChange): void;
  /** Lifecycle logging (the `logger` option); undefined when quiet. */
  readonly log?: LogSink | undefined;
}

/**
 * One worker's connection machine as its ParentWorker drives it: the actor with the I/O provided
 * (the transport opens and closes, the call client pings), the API's orders told to it (start,
 * stop, restart, hold) and settled by the states it reaches, and what each state change means
 * for the calls.
 */
export class WorkerLifecycle {
  readonly #host: LifecycleHost;
  readonly #machine: Actor<typeof connectionMachine>;
  readonly #waiters = new StateWaiters<ConnectionState>();
  #state: ConnectionState = "idle";
  #startError: Error | undefined;
  /** Why the last connection was lost; what calls refused while `failed` report. */
  #lostError: Error | undefined;
  #stopping: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  /** Set while an API order is being told to the machine (see #order). */
  #ordered = false;
  /** An ordered restart's reason: calls still in flight when its close ends are cut off then. */
  #cutAfterClose: string | undefined;
  readonly #log: WorkerLog | undefined;

  constructor(
    host: LifecycleHost,
    input: ConnectionInput,
    actorOptions: { inspect: InspectOption | undefined; parent: AnyActorRef | undefined; systemId?: string | undefined },
  ) {
    this.#host = host;
    const lifecycle = this;
    this.#log =
      host.log &&
      new WorkerLog(host.log, {
        name: host.name,
        mode: input.mode,
        get pid() {
          return host.transport.pid;
        },
        get restartCount() {
          return lifecycle.totalRestarts;
        },
      });
    const machine = connectionMachine.provide({
      actors: {
        open: fromPromise<void, { attempt: number }>(({ signal }) => this.#open(signal)),
        ping: fromPromise<number, { timeoutMs: number }>(({ input }) => host.client.ping(input.timeoutMs)),
        close: fromPromise<void, CloseInput>(({ input }) => this.#close(input)),
      },
      guards: {
        workerBusy: () => host.client.busy(host.heartbeatTimeoutMs),
        workerStopped: () => host.transport.isStopped(),
      },
    });
    this.#machine = createActor(machine, { input, inspect: actorOptions.inspect, parent: actorOptions.parent, systemId: actorOptions.systemId, id: actorOptions.systemId });
    this.#machine.subscribe((snapshot) => {
      const to = connectionStateOf(snapshot);
      if (to !== this.#state) this.#onStateChange(this.#state, to, snapshot.context.reason);
    });
    this.#machine.start();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get actor(): Actor<typeof connectionMachine> {
    return this.#machine;
  }

  /** Why the connection entered its current state. */
  get reason(): string {
    return this.#machine.getSnapshot().context.reason;
  }

  get totalRestarts(): number {
    return this.#machine.getSnapshot().context.totalRestarts;
  }

  get recentRestarts(): number {
    return this.#machine.getSnapshot().context.restarts;
  }

  /** Starts (or reconnects) and resolves once the worker has answered a heartbeat. */
  start(): Promise<void> {
    const state = this.#state;
    if (LIVE.has(state)) return Promise.resolve();
    if (state === "stopping") {
      return Promise.reject(new WorkerStartError(`Worker '${this.#host.name}' is stopping; await stop() before start()`));
    }
    if (this.#starting) return this.#starting;
    const sending = state === "idle" || state === "stopped" || state === "failed";
    this.#starting = this.#waiters
      .until(
        (to) => {
          if (LIVE.has(to)) return true;
          if (to === "failed") throw this.#startError ?? this.notRunningError();
          // Rejected once stopped, not while stopping: stop() callers see both settle together.
          if (to === "stopped") throw new WorkerStartError(`Worker '${this.#host.name}' was stopped before it became ready`);
          return false;
        },
        sending ? undefined : { state: this.#state },
      )
      .finally(() => (this.#starting = undefined));
    if (sending) {
      this.#startError = undefined;
      this.#lostError = undefined;
      this.tell({ type: "START" });
    }
    return this.#starting;
  }

  /** Stops and resolves once `stopped`. */
  stop(): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    if (this.#stopping) return this.#stopping;
    this.#stopping = this.#waiters
      .until((to) => to === "stopped", this.#state === "stopping" ? { state: this.#state } : undefined)
      .finally(() => (this.#stopping = undefined));
    this.tell({ type: "STOP" });
    return this.#stopping;
  }

  /** See ParentWorker.restart. */
  restart(reason: string, immediate: boolean): Promise<void> {
    const state = this.#state;
    if (!LIVE.has(state) && state !== "restarting") return this.start();
    const supervised = this.#host.supervised;
    let opened = false;
    const restarted = this.#waiters.until((to) => {
      if (LIVE.has(to)) return true;
      if (to === "failed" || to === "stopped") throw this.#startError ?? this.notRunningError();
      if (to === "spawning" || to === "connecting") opened = true;
      // Back to waiting for a supervisor's order: this attempt failed.
      else if (to === "restarting" && opened && supervised) throw this.#startError ?? this.notRunningError();
      return false;
    });
    if (state === "restarting") this.tell({ type: "REOPEN", reason });
    else this.#order({ type: "RESTART", reason, immediate: immediate || supervised });
    return restarted;
  }

  /** See ParentWorker.hold. */
  hold(reason: string): Promise<void> {
    if (!this.#host.supervised || !LIVE.has(this.#state)) return Promise.resolve();
    const held = this.#waiters.until((to) => to !== "stopping" && !LIVE.has(to));
    this.#order({ type: "RESTART", reason, immediate: false });
    return held;
  }

  /** An order through the API: the transition it causes is marked `ordered`. */
  #order(event: Extract<ConnectionEvent, { type: "RESTART" }>): void {
    if (LIVE.has(this.#state)) {
      // A graceful restart: what never left goes to the next connection; what the old child has,
      // it may still answer until the close ends (the close actor starts before we hear of the
      // transition, so this is set first).
      this.#host.client.rescueUnsent();
      this.#cutAfterClose = event.reason;
    }
    this.#ordered = true;
    try {
      this.tell(event);
    } finally {
      this.#ordered = false;
    }
  }

  tell(event: ConnectionEvent): void {
    this.#machine.send(event);
  }

  /** The transport lost the live connection: calls in flight learn it now, then the machine. */
  lost(channel: DealerChannel | undefined, error: Error, reason: string, normal: boolean): void {
    this.#lostError = error;
    this.#host.client.connectionLost(channel, error);
    this.tell({ type: "DOWN", reason, normal });
  }

  /** Why calls are refused now. */
  notRunningError(): Error {
    if (this.#state === "failed" && this.#lostError) return this.#lostError;
    return new WorkerNotRunningError(this.#host.name, this.#state === "failed" ? `failed: ${this.reason}` : this.#state);
  }

  // ── The connection machine's actors and what it hears ──────────────────────────────────────

  async #open(signal: AbortSignal): Promise<void> {
    try {
      await this.#host.transport.open(signal, this.#machine.getSnapshot().context.restarts);
    } catch (error) {
      this.#startError = error instanceof WorkerStartError ? error : new WorkerStartError(String(error), { cause: error });
      throw this.#startError;
    }
  }

  #onStateChange(from: ConnectionState, to: ConnectionState, reason: string): void {
    this.#state = to;
    const ordered = this.#ordered;
    const client = this.#host.client;
    if (LIVE.has(from) && to === "restarting") {
      if (!ordered) {
        // Not seen by the transport (hung): calls in flight are cut off all the same.
        client.connectionLost(undefined, this.#lostError ?? new WorkerExitedError(this.#host.name, null, null, [], reason));
        this.#lostError = undefined;
      }
    }
    if (LIVE.has(to) && !LIVE.has(from)) this.#lostError = undefined;
    client.stateChanged(from, to);
    this.#log?.state({ from, to, reason, ordered });
    this.#host.changed(ordered ? { from, to, reason, at: Date.now(), ordered } : { from, to, reason, at: Date.now() });
    this.#waiters.notify(to);
  }

  #close(input: CloseInput): Promise<void> {
    const closing = this.#host.transport.close(input.mode);
    if (this.#cutAfterClose === undefined) return closing;
    return closing.finally(() => {
      const reason = this.#cutAfterClose;
      this.#cutAfterClose = undefined;
      if (reason !== undefined) this.#host.client.connectionLost(undefined, new WorkerExitedError(this.#host.name, null, null, [], reason));
    });
  }
}
