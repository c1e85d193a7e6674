import type { ConnectionInput } from "../machines/connection.js";
import type { ResolvedOptions } from "./resolve-options.js";

/** The connection machine's input from a worker's checked settings. */
export function connectionInputOf(s: ResolvedOptions, mode: "spawn" | "connect", autoRestart: boolean, supervised: boolean): ConnectionInput {
  return {
    mode,
    autoRestart,
    supervised,
    restartType: s.restart,
    maxRestarts: s.maxRestartAttempts,
    heartbeat: {
      intervalMs: s.heartbeatIntervalMs,
      timeoutMs: s.heartbeatTimeoutMs,
      maxMisses: s.heartbeatMaxMisses,
      slowMs: s.heartbeatSlowThresholdMs,
    },
    backoff: s.backoff,
    circuit: {
      resetTimeoutMs: s.circuit?.resetTimeoutMs ?? 5_000,
      multiplier: s.circuit?.resetMultiplier ?? 2,
      maxResetTimeoutMs: s.circuit?.maxResetTimeoutMs ?? 60_000,
    },
    stablePeriodMs: s.stablePeriodMs,
  };
}
