import type { AnyActorRef, InspectionEvent, Observer } from "xstate";
import type { BackoffOptions } from "../core/backoff.js";
import type { FailureWindowOptions } from "../core/failure-window.js";
import type { RestartType } from "../machines/connection.js";
import type { ClientCurveOptions } from "../actors/curve.js";
import type { Logger, LogLevelOption } from "../observability/logger.js";
import type { RegistrySetting } from "../registry/index.js";

/**
 * Every option of a ParentWorker (their defaults and checks: resolve-options.ts).
 * Durations are in milliseconds and named `…Ms`; the v4 names (`heartbeatInterval` in seconds,
 * `defaultTimeout` in ms…) stay as aliases, and an `…Ms` name wins when both are given.
 */

export type OutputStream = "stdout" | "stderr";

/** XState's `inspect` option: an inspection callback or observer (e.g. `@statelyai/inspect`'s `inspector.inspect`). */
export type InspectOption = Observer<InspectionEvent> | ((event: InspectionEvent) => void);

export interface CircuitBreakerOptions extends Partial<FailureWindowOptions> {
  /**
   * How long the circuit stays open after a trip before one probe call is let through.
   * @default 5000
   */
  readonly resetTimeoutMs?: number;
  /** Alias of `resetTimeoutMs`. */
  readonly resetTimeout?: number;
  /**
   * Each trip without a stable period in between multiplies the open time by this.
   * @default 2
   */
  readonly resetMultiplier?: number;
  /**
   * Cap on the growing open time.
   * @default 60000
   */
  readonly maxResetTimeoutMs?: number;
  /** Alias of `maxResetTimeoutMs`. */
  readonly maxResetTimeout?: number;
  /**
   * Count the worker's own errors (`RemoteCallError`) as failures too; by default only timeouts
   * and transport failures count.
   * @default false
   */
  readonly countApplicationErrors?: boolean;
}

/** Options shared by spawned and connected workers. */
export interface CommonOptions {
  /** Shown in output prefixes, errors and events. Default: the script's file name / the service id. */
  readonly name?: string;
  /**
   * Per-call timeout when a call names none. `Infinity` waits forever.
   * @default 30000
   */
  readonly defaultTimeoutMs?: number;
  /** v4 name of `defaultTimeoutMs` (also in ms). */
  readonly defaultTimeout?: number;
  /**
   * How long `start()` (and each restart) waits for the worker's first heartbeat answer.
   * @default 10000
   */
  readonly startupTimeoutMs?: number;
  /** Alias of `startupTimeoutMs`. */
  readonly startupTimeout?: number;
  /**
   * Namespace for calls that do not name one.
   * @default "default"
   */
  readonly namespace?: string;
  /** Sent as `client_name` on every call. */
  readonly clientName?: string;
  /**
   * Receives each line the child prints (its stdout/stderr pipes and forwarded output messages).
   * Replaces the default, which prints `[name STDOUT]: line` to this process's stdout/stderr.
   */
  readonly onOutput?: (stream: OutputStream, line: string, workerName: string) => void;
  /**
   * v4: restart (spawn) or reconnect (connect) when the worker goes down. Ignored under a
   * supervisor, which decides restarts itself.
   * @default false for spawn, true for connect
   */
  readonly autoRestart?: boolean;
  /**
   * v4: restarts allowed (with `autoRestart`) before giving up; the count starts again after `stablePeriodMs`.
   * @default 5
   */
  readonly maxRestartAttempts?: number;
  /**
   * Which downs are restarted: "permanent" (all), "transient" (not a clean exit 0), "temporary" (none).
   * @default "permanent"
   */
  readonly restart?: RestartType;
  /**
   * Delay before each restart: exponential with jitter.
   * @default { minMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 }
   */
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * Connected this long without trouble → restart and circuit-trip counts start again.
   * @default 10000
   */
  readonly stablePeriodMs?: number;
  /** Alias of `stablePeriodMs`. */
  readonly stablePeriod?: number;
  /**
   * Between heartbeats; 0 disables them.
   * @default 5000
   */
  readonly heartbeatIntervalMs?: number;
  /** v4: `heartbeatIntervalMs` in seconds. */
  readonly heartbeatInterval?: number;
  /**
   * A heartbeat not answered within this is missed.
   * @default 3000
   */
  readonly heartbeatTimeoutMs?: number;
  /** v4: `heartbeatTimeoutMs` in seconds (v4's JS read them as ms). */
  readonly heartbeatTimeout?: number;
  /**
   * Consecutive missed heartbeats, with no call in flight to explain them, before the worker
   * counts as hung.
   * @default 3
   */
  readonly heartbeatMaxMisses?: number;
  /**
   * A heartbeat answered slower than this marks the connection degraded.
   * @default half of heartbeatTimeoutMs
   */
  readonly heartbeatSlowThresholdMs?: number;
  /** `heartbeatSlowThresholdMs` in seconds. */
  readonly heartbeatSlowThreshold?: number;
  /** The circuit breaker's settings, or `false` for none. */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * Calls made while the worker is (re)starting wait in a buffer of this size; beyond it they fail
   * with `WorkerUnavailableError`.
   * @default 1000
   */
  readonly maxBufferedCalls?: number;
  /**
   * Bytes: a message from the worker bigger than this drops the connection (zeromq's
   * ZMQ_MAXMSGSIZE; the calls in flight fail with WorkerExitedError), and a call bigger than this
   * is refused with EncodeError before it is sent.
   * @default 67108864 (64 MiB)
   */
  readonly maxMessageSize?: number;
  /**
   * Count calls by outcome and keep their latency (snapshot(), /metrics, OpenTelemetry). Costs
   * about nothing; `false` turns it off.
   * @default true
   */
  readonly metrics?: boolean;
  /**
   * Calls sent and not yet answered; beyond it a call fails at once with WorkerUnavailableError.
   * @default 100000
   */
  readonly maxPendingCalls?: number;
  /**
   * Every call to this worker may safely run twice: one that was in flight when the worker died
   * is sent again once it is back (within its timeout). A call's own `idempotent` wins.
   * @default false
   */
  readonly idempotent?: boolean;
  /**
   * How many times an idempotent call may be re-sent.
   * @default 1
   */
  readonly retries?: number;
  /** XState's inspect option for this worker's connection machine (Stately inspector, JSONL…). */
  readonly inspect?: InspectOption;
  /** Supervisors set this: the connection machine joins their actor system. */
  readonly parentActor?: AnyActorRef;
  /**
   * Lifecycle events (spawn, ready, exit, restart, breaker, missed heartbeats…) go to this
   * pino-compatible logger as `(fields, msg)`; calls are never logged. See docs/observability.md.
   * @default undefined (nothing is logged)
   */
  readonly logger?: Logger;
  /**
   * The lowest level passed to `logger`.
   * @default $MULTIFROST_LOG_LEVEL, else "info"
   */
  readonly logLevel?: LogLevelOption;
}

export interface SpawnOptions extends CommonOptions {
  /** Extra arguments after the script path (e.g. `["--worker"]`, which Python v4 parents add). */
  readonly args?: readonly string[];
  /** Extra environment for the child (merged over this process's environment). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /**
   * After the `shutdown` message, how long `stop()` waits before SIGTERM.
   * @default 2000
   */
  readonly shutdownTimeoutMs?: number;
  /** Alias of `shutdownTimeoutMs`. */
  readonly shutdownTimeout?: number;
  /**
   * After SIGTERM, how long `stop()` waits before SIGKILL.
   * @default 2000
   */
  readonly killTimeoutMs?: number;
  /** Alias of `killTimeoutMs`. */
  readonly killTimeout?: number;
  /**
   * Interface the parent binds for the child to connect to.
   * @default "127.0.0.1"
   */
  readonly host?: string;
}

/** Options for `ParentWorker.connect()`. */
export interface ConnectOptions extends CommonOptions {
  /**
   * Where services are registered: a backend, or a URL (`file:///dir`, `etcd://host:port[,…]`).
   * Default: `$MULTIFROST_REGISTRY`, else a FileRegistry (`$MULTIFROST_REGISTRY_DIR` or ~/.multifrost).
   */
  readonly registry?: RegistrySetting;
  /** Shorthand for `registry: new FileRegistry({ dir })`. */
  readonly registryDir?: string;
  /**
   * Talk to a CURVE service: this client's key pair (or the name of one in the keys directory,
   * `$MULTIFROST_KEYS_DIR` or ~/.multifrost/keys) and the service's public key (default: the
   * `publicKey` of its registry entry).
   */
  readonly curve?: ClientCurveOptions | string;
  /**
   * Host to connect to when the registry entry names none (a service on this machine's loopback);
   * an entry that carries a `host` (the service's `advertise`) is reached there.
   * @default "127.0.0.1"
   */
  readonly host?: string;
}

export type ParentOptions = SpawnOptions & ConnectOptions;
