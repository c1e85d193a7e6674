/** Shapes a handler's result may have, checked the same way by the dispatcher, the call context and the server span. */

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as { then?: unknown }).then === "function";
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

/** An async generator's shape: iterable and already an iterator. */
export function isAsyncIterator(value: unknown): value is AsyncIterableIterator<unknown> {
  return isAsyncIterable(value) && typeof (value as AsyncIterableIterator<unknown>).next === "function";
}
