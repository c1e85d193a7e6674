import { context, propagation, ROOT_CONTEXT, SpanKind, trace, type Context, type Span, type Tracer } from "@opentelemetry/api";
import type { IncomingCall } from "../child/call-context.js";
import { failSpan, registeredTracer, STREAM_CANCELLED_ATTRIBUTE, STREAM_CHUNKS_ATTRIBUTE } from "./call-tracing.js";
import type { ServerSpan } from "./handle-tracing.js";
import { isAsyncIterator, isThenable } from "../core/value-kinds.js";

/**
 * A worker's SERVER spans (docs/observability.md, Tracing): imported by handle-tracing.ts only
 * when the application registered a tracer provider, so a worker without tracing never loads
 * `@opentelemetry/api`.
 */

/** The runner for the registered tracer provider, or undefined when it is a no-op one. */
export function serverSpan(): ServerSpan | undefined {
  const tracer = registeredTracer();
  return tracer === undefined ? undefined : (incoming, run, streaming) => inServerSpan(tracer, incoming, run, streaming);
}

function inServerSpan(tracer: Tracer, incoming: IncomingCall, run: () => unknown, streaming: boolean): unknown {
  const carrier: Record<string, string> = {};
  const { traceparent, tracestate } = incoming;
  if (traceparent !== undefined) carrier.traceparent = traceparent;
  if (tracestate !== undefined) carrier.tracestate = tracestate;
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  const span = tracer.startSpan(
    incoming.function,
    { kind: SpanKind.SERVER, attributes: { "rpc.system": "multifrost", "rpc.method": incoming.function } },
    parent,
  );
  const active = trace.setSpan(parent, span);
  return context.with(active, () => {
    let result: unknown;
    try {
      result = run();
    } catch (error) {
      failSpan(span, error);
      span.end();
      throw error;
    }
    if (streaming && isAsyncIterator(result)) return spanOverStream(span, active, result);
    if (!isThenable(result)) {
      span.end();
      return result;
    }
    return Promise.resolve(result).then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        failSpan(span, error);
        span.end();
        throw error;
      },
    );
  });
}

/**
 * A generator handler's span lasts as long as its stream: each step runs in it, and it ends when
 * the generator is done, throws, or is `return()`ed by the caller's `cancel` (marked cancelled,
 * not an error), with the values yielded.
 */
function spanOverStream(span: Span, active: Context, iterator: AsyncIterableIterator<unknown>): AsyncIterableIterator<unknown> {
  let chunks = 0;
  let open = true;
  const end = (error: unknown, cancelled: boolean): void => {
    if (!open) return;
    open = false;
    span.setAttribute(STREAM_CHUNKS_ATTRIBUTE, chunks);
    if (cancelled) span.setAttribute(STREAM_CANCELLED_ATTRIBUTE, true);
    if (error !== undefined) failSpan(span, error);
    span.end();
  };
  const step = (run: () => Promise<IteratorResult<unknown>>, cancelled: boolean): Promise<IteratorResult<unknown>> => {
    let promise: Promise<IteratorResult<unknown>>;
    try {
      promise = context.with(active, run);
    } catch (error) {
      end(error, cancelled);
      throw error;
    }
    return promise.then(
      (result) => {
        if (result.done || cancelled) end(undefined, cancelled);
        else chunks++;
        return result;
      },
      (error: unknown) => {
        end(error, cancelled);
        throw error;
      },
    );
  };
  const wrapped: AsyncIterableIterator<unknown> = {
    next: (...value: [] | [unknown]) => step(() => iterator.next(...value), false),
    return: (value?: unknown) => step(() => iterator.return?.(value) ?? Promise.resolve({ done: true as const, value }), true),
    throw: (error?: unknown) => step(() => iterator.throw?.(error) ?? Promise.reject(error), false),
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}

