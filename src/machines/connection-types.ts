import type { BackoffOptions } from "../core/backoff.js";

/**
 * The connection machine's vocabulary (see connection.ts): its states, input, context and events,
 * and the pure rules its guards and delays apply.
 */

export type ConnectionState =
  | "idle"
  | "spawning"
  | "connecting"
  | "connected"
  | "degraded"
  | "circuit-open"
  | "half-open"
  | "restarting"
  | "stopping"
  | "stopped"
  | "failed";

/** The states in which the worker is up (calls are sent, or refused by the circuit breaker). */
export const LIVE_STATES: ReadonlySet<ConnectionState> = new Set(["connected", "degraded", "circuit-open", "half-open"]);

export type RestartType = "permanent" | "transient" | "temporary";

export interface HeartbeatSettings {
  /** Between the end of one heartbeat and the next, in ms; 0 disables heartbeats. */
  intervalMs: number;
  /** A heartbeat not answered within this is missed. */
  timeoutMs: number;
  /** Consecutive misses that make the worker unresponsive (restart / reconnect). */
  maxMisses: number;
  /** An answer slower than this marks the connection degraded. */
  slowMs: number;
}

export interface CircuitSettings {
  /** How long the circuit stays open after its first trip. */
  resetTimeoutMs: number;
  /** Each further trip (without a stable period in between) multiplies the open time by this. */
  multiplier: number;
  maxResetTimeoutMs: number;
}

export interface ConnectionInput {
  mode: "spawn" | "connect";
  /** Restart (or reconnect) by itself when the worker goes down. */
  autoRestart: boolean;
  /** A supervisor decides restarts: a down connection waits in `restarting` for `REOPEN`. */
  supervised?: boolean;
  restartType: RestartType;
  /** Restarts allowed before the connection fails; reset after a stable period. */
  maxRestarts: number;
  heartbeat: HeartbeatSettings;
  backoff: BackoffOptions;
  circuit: CircuitSettings;
  /** Connected this long without trouble → restart and trip counts start again from 0. */
  stablePeriodMs: number;
  /** Jitter source for the backoff; injectable for deterministic tests. */
  random?: () => number;
}

/** How the previous connection must be torn down. */
export type CloseMode = "graceful" | "kill";

/** Why the worker went down. `normal`: it exited with 0 or after a shutdown it was asked for. */
export interface DownInfo {
  reason: string;
  normal: boolean;
}

export type ConnectionEvent =
  | { type: "START" }
  | { type: "STOP"; reason?: string }
  | { type: "DOWN"; reason: string; normal: boolean }
  | { type: "RESTART"; reason: string; immediate?: boolean }
  /** The supervisor's order to a connection waiting in `restarting`: open again now. */
  | { type: "REOPEN"; reason?: string }
  | { type: "TRIPPED"; reason: string }
  | { type: "CALL_FAILED"; reason: string }
  | { type: "PROBE_OK" }
  | { type: "PROBE_FAILED"; reason: string }
  // raised by the heartbeat region for the health region
  | { type: "BEAT_OK"; rttMs: number }
  | { type: "BEAT_SLOW"; rttMs: number }
  | { type: "BEAT_MISSED"; misses: number; busy: boolean }
  | { type: "UNRESPONSIVE"; misses: number; stopped: boolean };

export interface ConnectionContext extends Omit<ConnectionInput, "random" | "supervised"> {
  supervised: boolean;
  random: () => number;
  /** Why the machine entered its current state. */
  reason: string;
  /** Restarts since the last stable period (drives the backoff and `maxRestarts`). */
  restarts: number;
  /** Restarts over the connection's whole life. */
  totalRestarts: number;
  /** Circuit trips since the last stable period (drives the growing reset timeout). */
  trips: number;
  misses: number;
  lastRttMs: number | undefined;
  closeMode: CloseMode;
  /** The next restart waits for its backoff (false: a supervisor asked for it to happen now). */
  waitBackoff: boolean;
}

export interface OpenInput {
  /** 0 for the first start, n for the n-th restart. */
  attempt: number;
}

export interface CloseInput {
  mode: CloseMode;
  reason: string;
}

export function downOf(event: ConnectionEvent): DownInfo {
  switch (event.type) {
    case "DOWN":
      return { reason: event.reason, normal: event.normal };
    case "UNRESPONSIVE":
      return {
        reason: event.stopped ? "hung: the process is stopped (state T)" : `unresponsive: ${event.misses} heartbeats missed, no call in flight`,
        normal: false,
      };
    default:
      return { reason: event.type.toLowerCase(), normal: false };
  }
}

export function restartAllowed(context: ConnectionContext, down: DownInfo): boolean {
  if (!context.supervised && (!context.autoRestart || context.restarts >= context.maxRestarts)) return false;
  switch (context.restartType) {
    case "permanent":
      return true;
    case "transient":
      return !down.normal;
    case "temporary":
      return false;
  }
}

/** The reset timeout after `trips` trips: grows by `multiplier`, capped. */
export function circuitResetDelay(trips: number, circuit: CircuitSettings): number {
  const grown = circuit.resetTimeoutMs * Math.pow(circuit.multiplier, Math.max(0, trips - 1));
  return Math.min(circuit.maxResetTimeoutMs, Number.isFinite(grown) ? grown : circuit.maxResetTimeoutMs);
}
