import { context, propagation, ROOT_CONTEXT, SpanKind, trace, type Tracer } from "@opentelemetry/api";
import type { IncomingCall } from "../child/call-context.js";
import { failSpan, registeredTracer } from "./call-tracing.js";
import type { ServerSpan } from "./handle-tracing.js";

/**
 * A worker's SERVER spans (docs/observability.md, Tracing): imported by handle-tracing.ts only
 * when the application registered a tracer provider, so a worker without tracing never loads
 * `@opentelemetry/api`.
 */

/** The runner for the registered tracer provider, or undefined when it is a no-op one. */
export function serverSpan(): ServerSpan | undefined {
  const tracer = registeredTracer();
  return tracer === undefined ? undefined : (incoming, run) => inServerSpan(tracer, incoming, run);
}

function inServerSpan(tracer: Tracer, incoming: IncomingCall, run: () => unknown): unknown {
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
  return context.with(trace.setSpan(parent, span), () => {
    let result: unknown;
    try {
      result = run();
    } catch (error) {
      failSpan(span, error);
      span.end();
      throw error;
    }
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

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
