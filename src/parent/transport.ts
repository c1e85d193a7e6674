import type { DealerChannel } from "../actors/zmq-channel.js";
import type { ProcessExit } from "../actors/process-actor.js";
import type { CloseMode } from "../machines/connection.js";
import type { LogSink } from "../observability/logger.js";
import type { CallClient } from "./call-client.js";
import type { OutputStream } from "./options.js";
import type { ResolvedOptions } from "./resolve-options.js";

/**
 * How a ParentWorker reaches its worker: by spawning it (spawn mode) or by finding a registered
 * service (connect mode). The connection machine's `open` and `close` actors call these.
 */
export interface Transport {
  /** Opens a connection and resolves once the worker answered a heartbeat; rejects with WorkerStartError. */
  open(signal: AbortSignal, attempt: number): Promise<void>;
  /** Ends the connection: "graceful" asks the worker to finish (spawn: shutdown → SIGTERM → SIGKILL to the group), "kill" does not wait. */
  close(mode: CloseMode): Promise<void>;
  /** Spawn mode: the port the parent bound; connect mode: the service's port. */
  readonly port: number | undefined;
  /** Spawn mode: the current (or last) child's pid. */
  readonly pid: number | undefined;
  /**
   * Spawn mode: whether the OS says the worker is stopped (SIGSTOP, a debugger): some process of
   * its group is in state T. Connect mode: always false (heartbeats judge).
   */
  isStopped(): boolean;
}

/** What a transport tells its owner. */
export interface TransportHost {
  readonly name: string;
  readonly settings: ResolvedOptions;
  readonly client: CallClient;
  /** A supervisor decides restarts: a restart attempt should fail fast rather than wait long. */
  readonly supervised: boolean;
  /** Whether the connection is up (a loss then means the worker went down, not a start failure). */
  isLive(): boolean;
  /**
   * The connection on `channel` is gone while live: `reason` for the machine ("killed by SIGKILL",
   * "disconnected"…), `normal` for a clean exit or one that was asked for.
   */
  lost(channel: DealerChannel | undefined, error: Error, reason: string, normal: boolean): void;
  output(stream: OutputStream, line: string): void;
  exited(exit: ProcessExit): void;
  /** Lifecycle logging (the `logger` option); undefined when quiet. */
  readonly log?: LogSink | undefined;
}
