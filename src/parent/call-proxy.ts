/**
 * `handle.call.<fn>(...args)`: a Proxy that turns property names into remote calls. One
 * function per name is cached, so a call allocates nothing here. It is not thenable and never
 * turns symbols, `then`, `toJSON` or inspection into remote calls.
 */

/** Per-call options for `withOptions`. They apply only to calls made through the returned proxy. */
export interface CallOptions {
  /** Milliseconds; `Infinity` waits forever. Defaults to the worker's `defaultTimeout`. */
  timeout?: number;
  /** The namespace the call is for. Defaults to the worker's namespace ("default"). */
  namespace?: string;
  /** Sent as `client_name`; v4 peers carry it without routing on it. */
  clientName?: string;
  /**
   * The call may safely run twice: if the worker dies while it is in flight, it is sent again
   * once the worker is back (within its timeout) instead of failing.
   */
  idempotent?: boolean;
  /** How many times an idempotent call may be re-sent. Default 1. */
  retries?: number;
  /**
   * Aborting it rejects the call at once with an `AbortError` (`cause`: the signal's reason) and
   * sends the worker a `cancel` (a call still waiting to be sent is just dropped). Multifrost
   * workers abort the handler's `this.call.signal`; v4 workers ignore it (best effort).
   */
  signal?: AbortSignal;
}

type AnyFunction = (...args: never[]) => unknown;

/** The remote view of a worker class: every method returns a Promise of its (awaited) result. */
export type Remote<T> = {
  [K in keyof T as T[K] extends AnyFunction ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/** A worker whose functions are not declared: any name, any arguments, an `unknown` result. */
export type DynamicFunctions = Record<string, (...args: unknown[]) => unknown>;

export type CallProxy<T = DynamicFunctions> = Remote<T> & {
  /** A proxy whose calls use these options (the original proxy is unchanged). */
  withOptions(options: CallOptions): CallProxy<T>;
};

export type Invoke = (functionName: string, args: unknown[], options: CallOptions | undefined) => Promise<unknown>;

/** Names that never become remote calls through the proxy; use `callFunction` for those. */
export const LOCAL_PROXY_NAMES: ReadonlySet<string> = new Set([
  "then",
  "catch",
  "finally",
  "toJSON",
  "constructor",
  "inspect",
  "asymmetricMatch",
  "nodeType",
  "$$typeof",
  "withOptions",
  "toString",
  "valueOf",
]);

function describeProxy(): string {
  return "[object MultifrostCallProxy]";
}

export function createCallProxy<T>(invoke: Invoke, options?: CallOptions): CallProxy<T> {
  const cache = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const withOptions = (next: CallOptions): CallProxy<T> => createCallProxy<T>(invoke, { ...options, ...next });
  return new Proxy(Object.create(null) as object, {
    get(_target, property) {
      if (typeof property !== "string") return undefined;
      if (LOCAL_PROXY_NAMES.has(property)) {
        if (property === "withOptions") return withOptions;
        if (property === "toString" || property === "valueOf") return describeProxy;
        return undefined;
      }
      let fn = cache.get(property);
      if (fn === undefined) {
        fn = (...args: unknown[]) => invoke(property, args, options);
        cache.set(property, fn);
      }
      return fn;
    },
    set() {
      return false;
    },
  }) as CallProxy<T>;
}
