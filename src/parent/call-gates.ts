import type { ConnectionState } from "../machines/connection.js";

/** How a call is handled in the current state; a number so the hot path is one switch. */
export const enum Gate {
  Send,
  Buffer,
  CircuitOpen,
  HalfOpen,
  Closed,
}

export const GATES: Record<ConnectionState, Gate> = {
  idle: Gate.Closed,
  spawning: Gate.Buffer,
  connecting: Gate.Buffer,
  connected: Gate.Send,
  degraded: Gate.Send,
  "circuit-open": Gate.CircuitOpen,
  "half-open": Gate.HalfOpen,
  restarting: Gate.Buffer,
  stopping: Gate.Closed,
  stopped: Gate.Closed,
  failed: Gate.Closed,
};
