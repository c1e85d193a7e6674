import { FailureWindow } from "../core/failure-window.js";
import { CallTimeoutError, ProtocolError, RemoteCallError, SendFailedError } from "../errors.js";
import type { ConnectionState } from "../machines/connection.js";
import type { CallClientHost } from "./call-client-host.js";
import { AbortError } from "./call-cancel.js";
import type { ResolvedOptions } from "./resolve-options.js";

/**
 * The circuit breaker's bookkeeping for one worker's calls: the failure window that outcomes feed,
 * and the one probe call a half-open circuit lets through. It tells the connection machine only
 * thresholds (a trip, a counted failure, a probe's outcome), never individual calls.
 */
export class CircuitAccounting {
  readonly #window: FailureWindow | undefined;
  readonly #countApplicationErrors: boolean;
  readonly #tell: CallClientHost["tell"];
  #state: ConnectionState = "idle";
  #probeId: string | undefined;

  constructor(circuit: ResolvedOptions["circuit"], tell: CallClientHost["tell"]) {
    this.#window = circuit && new FailureWindow(circuit.window);
    this.#countApplicationErrors = circuit?.countApplicationErrors ?? false;
    this.#tell = tell;
  }

  /** A half-open circuit's probe is in flight: other calls are refused meanwhile. */
  get probing(): boolean {
    return this.#probeId !== undefined;
  }

  /** The connection machine moved: a new connection or a closed circuit starts a fresh window. */
  stateChanged(from: ConnectionState, to: ConnectionState, cameUp: boolean): void {
    this.#state = to;
    if (cameUp || (to === "connected" && from === "half-open")) this.#window?.reset();
    if (to === "circuit-open" || to === "half-open") this.#probeId = undefined;
  }

  /** A call was answered. */
  succeeded(): void {
    this.#window?.recordSuccess();
  }

  /** The worker raised: a failure only when the breaker counts application errors. */
  remoteError(): void {
    if (this.#countApplicationErrors) this.failed("remote error");
    else this.#window?.recordSuccess();
  }

  /** A timeout or transport failure: feeds the failure window, which may trip the circuit. */
  failed(reason: string): void {
    const window = this.#window;
    if (window === undefined || (this.#state !== "connected" && this.#state !== "degraded")) return;
    if (window.recordFailure()) {
      const stats = window.snapshot();
      window.reset();
      this.#tell({ type: "TRIPPED", reason: `${reason}; ${stats.failures} of ${stats.requests} calls failed, ${stats.consecutiveFailures} in a row` });
    } else if (this.#state === "connected") {
      this.#tell({ type: "CALL_FAILED", reason });
    }
  }

  /** The one call a half-open circuit lets through: its outcome closes or re-opens the circuit. */
  probe(id: string, promise: Promise<unknown>): void {
    this.#probeId = id;
    const settle = (ok: boolean, reason: string) => {
      if (this.#probeId !== id) return;
      this.#probeId = undefined;
      this.#tell(ok ? { type: "PROBE_OK" } : { type: "PROBE_FAILED", reason });
    };
    promise.then(
      () => settle(true, ""),
      (error: unknown) => {
        // A cancelled probe says nothing about the worker: the next call is the probe.
        if (error instanceof AbortError) this.#probeId = this.#probeId === id ? undefined : this.#probeId;
        else settle(!this.#countsAsFailure(error), `probe failed: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  }

  #countsAsFailure(error: unknown): boolean {
    if (error instanceof RemoteCallError) return this.#countApplicationErrors;
    return error instanceof CallTimeoutError || error instanceof SendFailedError || error instanceof ProtocolError;
  }
}
