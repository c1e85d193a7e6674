import type { ConnectionEvent } from "../machines/connection.js";
import type { RejectReason } from "../wire/index.js";
import type { OutputStream } from "./options.js";

/** The CallClient's counters and what it needs from its owner (the ParentWorker). */

export interface CallClientStats {
  callsSent: number;
  /** Replies whose id matched no pending call (late after a timeout, or duplicates). */
  unmatchedReplies: number;
  /** Frames dropped as invalid, by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  /** Idempotent calls sent again after the worker came back. */
  retries: number;
  /** `cancel` messages sent (a call's signal aborted, or it timed out, after it was sent). */
  cancelsSent: number;
}

/** What the client needs from its owner. */
export interface CallClientHost {
  readonly name: string;
  tell(event: ConnectionEvent): void;
  /** An output line the worker forwarded as a message. */
  output(stream: OutputStream, line: string): void;
  /** Why calls are refused now (stopped, failed…). */
  notRunningError(): Error;
  /** Why the connection is in its current state. */
  stateReason(): string;
  /** A heartbeat was answered (the tick usage sampling rides on). */
  heartbeat?(): void;
}
