/**
 * Cancelling a call (docs/api.md, Cancellation; docs/wire.md, Cancellation): the `signal` call
 * option. An aborted signal rejects the call's promise at once with an `AbortError`; the
 * CallClient then drops the call from its table (a late reply is dropped and counted in
 * `stats.unmatchedReplies`) and, when the call was sent, tells the worker with a `cancel`
 * message. Nothing here touches a socket.
 */

/**
 * The error of a call whose `signal` aborted: like the DOMException `fetch` and Node's APIs
 * reject with (`name === "AbortError"`, `code` 20 as for a DOMException), with the signal's
 * `reason` as `cause`.
 */
export class AbortError extends Error {
  override readonly name = "AbortError";
  /** DOMException.ABORT_ERR. */
  readonly code = 20;
  /** The function the aborted call was for, when known. */
  readonly functionName: string | undefined;

  constructor(message = "The operation was aborted", options?: { cause?: unknown; functionName?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.functionName = options?.functionName;
  }
}

/** The AbortError of a call to `functionName` aborted by `signal`. */
export function abortErrorFor(signal: AbortSignal, functionName: string): AbortError {
  return new AbortError(`The call to '${functionName}' was aborted`, { cause: signal.reason, functionName });
}

export function isAbortSignal(value: unknown): value is AbortSignal {
  return typeof value === "object" && value !== null && typeof (value as AbortSignal).addEventListener === "function" &&
    typeof (value as AbortSignal).aborted === "boolean";
}

/** Per signal: one `abort` listener for all the calls in flight with it (no MaxListeners warning for a shared signal). */
interface Watch {
  readonly listener: () => void;
  readonly calls: Set<() => void>;
}
const watches = new WeakMap<AbortSignal, Watch>();

/** Runs `onAbort` when `signal` aborts; the returned function stops watching (the last one removes the listener). */
function watchSignal(signal: AbortSignal, onAbort: () => void): () => void {
  let watch = watches.get(signal);
  if (watch === undefined) {
    const calls = new Set<() => void>();
    const listener = (): void => {
      watches.delete(signal);
      for (const call of [...calls]) call();
    };
    watch = { listener, calls };
    watches.set(signal, watch);
    signal.addEventListener("abort", listener, { once: true });
  }
  const { calls, listener } = watch;
  calls.add(onAbort);
  return () => {
    if (!calls.delete(onAbort) || calls.size > 0) return;
    if (watches.get(signal)?.calls === calls) watches.delete(signal);
    signal.removeEventListener("abort", listener);
  };
}

/**
 * Ties `promise` (a registered call's) to `signal`: on abort `onAbort()` runs (which rejects the
 * call's promise with an AbortError when it is still pending) and the returned promise rejects
 * with that error even if the call could not be found any more (an idempotent call being
 * retried under a new id). The watch ends when the call settles: a long-lived signal shared by
 * many calls holds one listener while any of them is in flight, none afterwards.
 */
export function bindSignal(signal: AbortSignal, functionName: string, promise: Promise<unknown>, onAbort: (error: AbortError) => void): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const unwatch = watchSignal(signal, () => {
      const error = abortErrorFor(signal, functionName);
      reject(error);
      onAbort(error);
    });
    promise.then(
      (value) => {
        unwatch();
        resolve(value);
      },
      (error: unknown) => {
        unwatch();
        reject(error);
      },
    );
  });
}
