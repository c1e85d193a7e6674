import type { BackoffOptions } from "../core/backoff.js";
import { isLogger } from "../observability/logger.js";
import type { CircuitBreakerOptions } from "../parent/options.js";
import { isValidTimeout } from "../parent/resolve-options.js";
import { suggestion } from "./did-you-mean.js";
import type { WorkerSettings } from "./spec.js";

/**
 * How each field of a spec is checked: one check per worker option, in tables typed
 * `Record<keyof …, FieldCheck>`, so that an option added to `CommonOptions`, `SpawnOptions`,
 * `ConnectOptions`, `BackoffOptions` or `CircuitBreakerOptions` does not compile until it is
 * listed here. The rules are `resolveOptions()`'s (src/parent/options.ts), reported with a path
 * instead of thrown, so that a file's every mistake shows at once.
 */

/** A step from an object to one of its fields: a key, or an array index. */
export type Key = string | number;

/** Reports a problem at `at` (keys from the child spec to the field). */
export type FieldReport = (at: readonly Key[], message: string, where?: "key" | "value") => void;

export type FieldCheck = (value: unknown, at: readonly Key[], report: FieldReport) => void;

/** A value as a message shows it: strings quoted, containers summarised. */
export function describe(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "number" || typeof value === "bigint" || value === undefined) return String(value);
  if (Array.isArray(value)) return value.length === 0 ? "[]" : "an array";
  if (typeof value === "object" && value !== null) return "an object";
  return JSON.stringify(value);
}

/** `backoff.minMs`, `args[2]`, `env.HOME`. */
export function fieldName(at: readonly Key[]): string {
  return at.map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? key : `.${key}`)).join("");
}

function expect(test: (value: unknown) => boolean, expectation: string): FieldCheck {
  return (value, at, report) => {
    if (!test(value)) report(at, `${fieldName(at)} must be ${expectation}, got ${describe(value)}`);
  };
}

const isFinite = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);
const isInteger = (min: number) => (value: unknown) => typeof value === "number" && Number.isSafeInteger(value) && value >= min;

const oneOf = (values: readonly string[]) =>
  expect((value) => typeof value === "string" && values.includes(value), values.map((v) => JSON.stringify(v)).join(", ").replace(/, ([^,]*)$/, " or $1"));

/** Generic checks, shared by the tables below and by `check-spec.ts`. */
export const CHECKS = Object.freeze({
  text: expect((value) => typeof value === "string" && value.trim() !== "", "a non-empty string"),
  anyString: expect((value) => typeof value === "string", "a string"),
  boolean: expect((value) => typeof value === "boolean", "true or false"),
  integerAtLeast0: expect(isInteger(0), "an integer ≥ 0"),
  integerAtLeast1: expect(isInteger(1), "an integer ≥ 1"),
  /** Durations that may also wait forever: `resolveOptions`' `checkTimeout`. */
  timeoutMs: expect(isValidTimeout, "a positive number of ms or Infinity"),
  positiveMs: expect((value) => isFinite(value) && value > 0, "a positive finite number of ms"),
  nonNegativeMs: expect((value) => isFinite(value) && value >= 0, "a finite number of ms ≥ 0"),
  positiveSeconds: expect((value) => isFinite(value) && value > 0, "a positive finite number of seconds"),
  nonNegativeSeconds: expect((value) => isFinite(value) && value >= 0, "a finite number of seconds ≥ 0"),
  countAtLeast0: expect((value) => value === Infinity || isInteger(0)(value), "an integer ≥ 0 or Infinity"),
  countAtLeast1: expect((value) => value === Infinity || isInteger(1)(value), "an integer ≥ 1 or Infinity"),
  strategy: oneOf(["one_for_one", "one_for_all", "rest_for_one"]),
  restart: oneOf(["permanent", "transient", "temporary"]),
  select: oneOf(["round-robin", "least-busy"]),
  executable: (value: unknown, at: readonly Key[], report: FieldReport) => {
    const ok =
      (typeof value === "string" && value.trim() !== "") ||
      (Array.isArray(value) && value.length > 0 && value.every((word) => typeof word === "string" && word !== ""));
    if (!ok) report(at, `${fieldName(at)} must be a command (a non-empty string) or a non-empty array of strings, got ${describe(value)}`);
  },
});

/** A nested object whose own keys are checked by `table`; unknown keys get a suggestion. */
function objectOf(table: Readonly<Record<string, FieldCheck>>, after?: FieldCheck): FieldCheck {
  return (value, at, report) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      report(at, `${fieldName(at)} must be an object, got ${describe(value)}`);
      return;
    }
    for (const [key, field] of Object.entries(value)) {
      if (!Object.hasOwn(table, key)) {
        report([...at, key], `${fieldName(at)}: unknown key '${key}'${suggestion(key, Object.keys(table))}`, "key");
      } else if (field !== undefined) {
        table[key]!(field, [...at, key], report);
      }
    }
    after?.(value, at, report);
  };
}

const BACKOFF: Readonly<Record<keyof BackoffOptions, FieldCheck>> = {
  minMs: CHECKS.nonNegativeMs,
  maxMs: CHECKS.nonNegativeMs,
  multiplier: expect((value) => isFinite(value) && value >= 1, "a finite number ≥ 1"),
  jitter: expect((value) => typeof value === "number" && value >= 0 && value <= 1, "a number from 0 to 1"),
};

const backoffRange: FieldCheck = (value, at, report) => {
  const { minMs, maxMs } = value as Partial<Record<keyof BackoffOptions, unknown>>;
  if (isFinite(minMs) && isFinite(maxMs) && maxMs < minMs) report([...at, "maxMs"], `${fieldName(at)}.maxMs (${maxMs}) must be ≥ minMs (${minMs})`);
};

const CIRCUIT_BREAKER: Readonly<Record<keyof CircuitBreakerOptions, FieldCheck>> = {
  windowMs: CHECKS.positiveMs,
  buckets: CHECKS.integerAtLeast1,
  minRequests: CHECKS.integerAtLeast0,
  failureRate: expect((value) => typeof value === "number" && value > 0 && value <= 1, "a number with 0 < failureRate ≤ 1"),
  consecutiveFailures: CHECKS.integerAtLeast0,
  resetTimeoutMs: CHECKS.timeoutMs,
  resetTimeout: CHECKS.timeoutMs,
  resetMultiplier: expect((value) => isFinite(value) && value >= 1, "a finite number ≥ 1"),
  maxResetTimeoutMs: CHECKS.timeoutMs,
  maxResetTimeout: CHECKS.timeoutMs,
  countApplicationErrors: CHECKS.boolean,
};

const circuitBreaker: FieldCheck = (value, at, report) => {
  if (value === false) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    report(at, `${fieldName(at)} must be false or an object of circuit breaker settings, got ${describe(value)}`);
    return;
  }
  objectOf(CIRCUIT_BREAKER)(value, at, report);
};

const stringArray: FieldCheck = (value, at, report) => {
  if (!Array.isArray(value)) {
    report(at, `${fieldName(at)} must be an array of strings, got ${describe(value)}`);
    return;
  }
  value.forEach((item: unknown, i) => {
    if (typeof item !== "string") report([...at, i], `${fieldName([...at, i])} must be a string, got ${describe(item)}`);
  });
};

const stringMap: FieldCheck = (value, at, report) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    report(at, `${fieldName(at)} must be an object of strings (NAME: value), got ${describe(value)}`);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string" && item !== undefined) report([...at, key], `${fieldName([...at, key])} must be a string, got ${describe(item)}`);
  }
};

/** Every per-worker option a spec may carry, each with its check. */
export const WORKER_FIELDS: Readonly<Record<keyof WorkerSettings, FieldCheck>> = {
  defaultTimeoutMs: CHECKS.timeoutMs,
  defaultTimeout: CHECKS.timeoutMs,
  startupTimeoutMs: CHECKS.timeoutMs,
  startupTimeout: CHECKS.timeoutMs,
  namespace: CHECKS.text,
  clientName: CHECKS.anyString,
  onOutput: expect((value) => typeof value === "function", "a function (it cannot be given in a JSON or YAML file)"),
  logger: expect(isLogger, "a pino-compatible logger with debug, info, warn and error methods (it cannot be given in a JSON or YAML file)"),
  logLevel: oneOf(["debug", "info", "warn", "error", "silent"]),
  restart: CHECKS.restart,
  backoff: objectOf(BACKOFF, backoffRange),
  stablePeriodMs: CHECKS.timeoutMs,
  stablePeriod: CHECKS.timeoutMs,
  heartbeatIntervalMs: CHECKS.nonNegativeMs,
  heartbeatInterval: CHECKS.nonNegativeSeconds,
  heartbeatTimeoutMs: CHECKS.positiveMs,
  heartbeatTimeout: CHECKS.positiveSeconds,
  heartbeatMaxMisses: CHECKS.countAtLeast1,
  heartbeatSlowThresholdMs: CHECKS.positiveMs,
  heartbeatSlowThreshold: CHECKS.positiveSeconds,
  circuitBreaker,
  maxBufferedCalls: CHECKS.countAtLeast0,
  maxMessageSize: CHECKS.countAtLeast1,
  maxPendingCalls: CHECKS.countAtLeast1,
  metrics: CHECKS.boolean,
  idempotent: CHECKS.boolean,
  retries: CHECKS.integerAtLeast0,
  args: stringArray,
  env: stringMap,
  cwd: CHECKS.text,
  shutdownTimeoutMs: CHECKS.nonNegativeMs,
  shutdownTimeout: CHECKS.nonNegativeMs,
  killTimeoutMs: CHECKS.nonNegativeMs,
  killTimeout: CHECKS.nonNegativeMs,
  host: CHECKS.text,
  registryDir: CHECKS.text,
  curve: (value: unknown, at: readonly Key[], report: FieldReport) => {
    const key = (v: unknown) => typeof v === "string" && v.length === 40;
    const record = value as Record<string, unknown> | null;
    const ok =
      (typeof value === "string" && value.trim() !== "") ||
      (typeof value === "object" && record !== null && !Array.isArray(value) &&
        key(record["publicKey"]) && key(record["secretKey"]) &&
        (record["serverPublicKey"] === undefined || key(record["serverPublicKey"])) &&
        Object.keys(record).every((k) => k === "publicKey" || k === "secretKey" || k === "serverPublicKey"));
    if (!ok) report(at, `${fieldName(at)} must be a key pair name or { publicKey, secretKey, serverPublicKey? } (40-character Z85 keys), got ${describe(value)}`);
  },
};
