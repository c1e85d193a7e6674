import { resolveBackoff, type BackoffOptions } from "../core/backoff.js";
import type { FailureWindowOptions } from "../core/failure-window.js";
import { InvalidArgumentError } from "../errors.js";
import type { RestartType } from "../machines/connection.js";
import type { ParentOptions } from "./options.js";

/**
 * What a ParentWorker runs with: the defaults of every option (`PARENT_DEFAULTS`), and the checks
 * that turn the options given (options.ts: `…Ms` names, v4 aliases) into settings in ms with
 * nothing left undefined, naming the option in every InvalidArgumentError.
 */

export const PARENT_DEFAULTS = Object.freeze({
  defaultTimeoutMs: 30_000,
  startupTimeoutMs: 10_000,
  shutdownTimeoutMs: 2_000,
  killTimeoutMs: 2_000,
  namespace: "default",
  maxRestartAttempts: 5,
  restart: "permanent" as RestartType,
  stablePeriodMs: 10_000,
  heartbeatIntervalMs: 5_000,
  heartbeatTimeoutMs: 3_000,
  heartbeatMaxMisses: 3,
  maxBufferedCalls: 1000,
  maxMessageSize: 64 * 1024 * 1024,
  maxPendingCalls: 100_000,
  idempotent: false,
  retries: 1,
  circuitResetTimeoutMs: 5_000,
  circuitResetMultiplier: 2,
  circuitMaxResetTimeoutMs: 60_000,
  host: "127.0.0.1",
});

/** The checked settings a ParentWorker runs with: every duration in ms, nothing left undefined. */
export interface ResolvedOptions {
  readonly defaultTimeoutMs: number;
  readonly startupTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly killTimeoutMs: number;
  readonly maxRestartAttempts: number;
  readonly restart: RestartType;
  readonly backoff: BackoffOptions;
  readonly stablePeriodMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly heartbeatMaxMisses: number;
  readonly heartbeatSlowThresholdMs: number;
  readonly maxBufferedCalls: number;
  readonly maxMessageSize: number;
  readonly maxPendingCalls: number;
  readonly metrics: boolean;
  readonly idempotent: boolean;
  readonly retries: number;
  /** undefined: no circuit breaker. */
  readonly circuit:
    | {
        readonly window: Partial<FailureWindowOptions>;
        readonly resetTimeoutMs: number;
        readonly resetMultiplier: number;
        readonly maxResetTimeoutMs: number;
        readonly countApplicationErrors: boolean;
      }
    | undefined;
  readonly host: string;
}

/** Checks every option and resolves aliases and defaults; throws InvalidArgumentError naming the option. */
export function resolveOptions(options: ParentOptions): ResolvedOptions {
  const o = options;
  const seconds = (value: number | undefined, name: string, zeroAllowed: boolean) =>
    value === undefined ? undefined : checkSeconds(value, name, zeroAllowed) * 1000;
  const heartbeatTimeoutMs = checkDuration(
    o.heartbeatTimeoutMs ?? seconds(o.heartbeatTimeout, "heartbeatTimeout", false) ?? PARENT_DEFAULTS.heartbeatTimeoutMs,
    o.heartbeatTimeoutMs !== undefined ? "heartbeatTimeoutMs" : "heartbeatTimeout",
    false,
  );
  const breaker = o.circuitBreaker === false ? undefined : (o.circuitBreaker ?? {});
  const resetTimeoutMs =
    breaker && checkTimeout(breaker.resetTimeoutMs ?? breaker.resetTimeout ?? PARENT_DEFAULTS.circuitResetTimeoutMs, "circuitBreaker.resetTimeoutMs");
  const { resetTimeoutMs: _a, resetTimeout: _b, resetMultiplier, maxResetTimeoutMs, maxResetTimeout, countApplicationErrors, ...window } = breaker ?? {};
  return {
    defaultTimeoutMs: checkTimeout(o.defaultTimeoutMs ?? o.defaultTimeout ?? PARENT_DEFAULTS.defaultTimeoutMs, "defaultTimeoutMs"),
    startupTimeoutMs: checkTimeout(o.startupTimeoutMs ?? o.startupTimeout ?? PARENT_DEFAULTS.startupTimeoutMs, "startupTimeoutMs"),
    shutdownTimeoutMs: checkDuration(o.shutdownTimeoutMs ?? o.shutdownTimeout ?? PARENT_DEFAULTS.shutdownTimeoutMs, "shutdownTimeoutMs", true),
    killTimeoutMs: checkDuration(o.killTimeoutMs ?? o.killTimeout ?? PARENT_DEFAULTS.killTimeoutMs, "killTimeoutMs", true),
    maxRestartAttempts: checkCount(o.maxRestartAttempts ?? PARENT_DEFAULTS.maxRestartAttempts, "maxRestartAttempts"),
    restart: checkRestartType(o.restart ?? PARENT_DEFAULTS.restart),
    backoff: resolveBackoff(o.backoff),
    stablePeriodMs: checkTimeout(o.stablePeriodMs ?? o.stablePeriod ?? PARENT_DEFAULTS.stablePeriodMs, "stablePeriodMs"),
    heartbeatIntervalMs: checkDuration(
      o.heartbeatIntervalMs ?? seconds(o.heartbeatInterval, "heartbeatInterval", true) ?? PARENT_DEFAULTS.heartbeatIntervalMs,
      "heartbeatIntervalMs",
      true,
    ),
    heartbeatTimeoutMs,
    heartbeatMaxMisses: checkCount(o.heartbeatMaxMisses ?? PARENT_DEFAULTS.heartbeatMaxMisses, "heartbeatMaxMisses", 1),
    heartbeatSlowThresholdMs:
      o.heartbeatSlowThresholdMs !== undefined
        ? checkDuration(o.heartbeatSlowThresholdMs, "heartbeatSlowThresholdMs", false)
        : (seconds(o.heartbeatSlowThreshold, "heartbeatSlowThreshold", false) ?? heartbeatTimeoutMs / 2),
    maxBufferedCalls: checkCount(o.maxBufferedCalls ?? PARENT_DEFAULTS.maxBufferedCalls, "maxBufferedCalls"),
    maxMessageSize: checkCount(o.maxMessageSize ?? PARENT_DEFAULTS.maxMessageSize, "maxMessageSize", 1),
    maxPendingCalls: checkCount(o.maxPendingCalls ?? PARENT_DEFAULTS.maxPendingCalls, "maxPendingCalls", 1),
    metrics: checkBoolean(o.metrics ?? true, "metrics"),
    idempotent: checkBoolean(o.idempotent ?? PARENT_DEFAULTS.idempotent, "idempotent"),
    retries: checkRetries(o.retries ?? PARENT_DEFAULTS.retries),
    circuit:
      breaker === undefined
        ? undefined
        : {
            window,
            resetTimeoutMs: resetTimeoutMs!,
            resetMultiplier: checkMultiplier(resetMultiplier ?? PARENT_DEFAULTS.circuitResetMultiplier),
            maxResetTimeoutMs: Math.max(
              resetTimeoutMs!,
              checkTimeout(maxResetTimeoutMs ?? maxResetTimeout ?? PARENT_DEFAULTS.circuitMaxResetTimeoutMs, "circuitBreaker.maxResetTimeoutMs"),
            ),
            countApplicationErrors: checkBoolean(countApplicationErrors ?? false, "circuitBreaker.countApplicationErrors"),
          },
    host: o.host ?? PARENT_DEFAULTS.host,
  };
}

export function isValidTimeout(value: unknown): value is number {
  return typeof value === "number" && (value === Infinity || (Number.isFinite(value) && value > 0));
}

export function checkTimeout(value: number, name: string): number {
  if (!isValidTimeout(value)) throw new InvalidArgumentError(`${name} must be a positive number of ms or Infinity, got ${String(value)}`);
  return value;
}

function checkDuration(value: number, name: string, zeroAllowed: boolean): number {
  const ok = typeof value === "number" && Number.isFinite(value) && (value > 0 || (zeroAllowed && value === 0));
  if (!ok) throw new InvalidArgumentError(`${name} must be a ${zeroAllowed ? "non-negative" : "positive"} number of ms, got ${String(value)}`);
  return value;
}

function checkSeconds(value: number, name: string, zeroAllowed: boolean): number {
  const ok = typeof value === "number" && Number.isFinite(value) && (value > 0 || (zeroAllowed && value === 0));
  if (!ok) throw new InvalidArgumentError(`${name} must be a ${zeroAllowed ? "non-negative" : "positive"} number of seconds, got ${String(value)}`);
  return value;
}

function checkCount(value: number, name: string, min = 0): number {
  const ok = value === Infinity || (Number.isInteger(value) && value >= min);
  if (!ok) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (or Infinity), got ${String(value)}`);
  return value;
}

function checkMultiplier(value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 1) {
    throw new InvalidArgumentError(`circuitBreaker.resetMultiplier must be a number ≥ 1, got ${String(value)}`);
  }
  return value;
}

function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw new InvalidArgumentError(`${name} must be true or false, got ${String(value)}`);
  return value;
}

export function checkRetries(value: number | undefined): number {
  if (value === undefined) return 1;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`retries must be an integer ≥ 0, got ${String(value)}`);
  return value;
}

function checkRestartType(value: string): RestartType {
  if (value !== "permanent" && value !== "transient" && value !== "temporary") {
    throw new InvalidArgumentError(`restart must be "permanent", "transient" or "temporary", got ${JSON.stringify(value)}`);
  }
  return value;
}
