import { context, propagation, ROOT_CONTEXT, SpanKind, trace, type Tracer } from "@opentelemetry/api";
import { tracingChannel } from "node:diagnostics_channel";
import { IncomingCall, runInCall } from "../child/call-context.js";
import type { CallMessage } from "../wire/messages.js";
import { failSpan } from "./call-tracing.js";

/**
 * The child side of tracing (docs/observability.md, Tracing): every handler runs as the handling
 * of its call (`this.call`); with a tracer provider registered in the worker it runs in a SERVER
 * span continuing the caller's `traceparent`; while `multifrost:handle` has subscribers, the
 * channel sees start/end (and asyncStart/asyncEnd for async handlers) and error.
 */

export const HANDLE_CHANNEL = "multifrost:handle";

/** What `multifrost:handle` subscribers receive (`result` or `error` is set when the handler settles). */
export interface HandleChannelContext {
  functionName: string;
  args: unknown[];
  /** The call message's id. */
  id: string;
  result?: unknown;
  error?: unknown;
}

const handleChannel = tracingChannel<unknown, HandleChannelContext>(HANDLE_CHANNEL);

type Handler = (...args: unknown[]) => unknown;

/** How a worker invokes a handler for a call (the Dispatcher's `invoke` option). */
export function callInvoker(tracer: Tracer | undefined): (handler: Handler, call: CallMessage) => unknown {
  return (handler, call) => {
    const incoming = new IncomingCall(call);
    if (tracer === undefined && !handleChannel.hasSubscribers) return runInCall(incoming, handler, call.args);
    const run = (): unknown => runInCall(incoming, handler, call.args);
    if (!handleChannel.hasSubscribers) return inServerSpan(tracer!, incoming, run);
    const channelContext: HandleChannelContext = { functionName: call.function, args: call.args, id: call.id };
    return traced(channelContext, tracer === undefined ? run : () => inServerSpan(tracer, incoming, run));
  };
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

/** As TracingChannel's traceSync, or tracePromise when the handler returns a promise. */
function traced(channelContext: HandleChannelContext, run: () => unknown): unknown {
  const { start, end, asyncStart, asyncEnd, error: errorChannel } = handleChannel;
  return start.runStores(channelContext, () => {
    let result: unknown;
    try {
      result = run();
      if (!isThenable(result)) channelContext.result = result;
    } catch (error) {
      channelContext.error = error;
      errorChannel.publish(channelContext);
      throw error;
    } finally {
      end.publish(channelContext);
    }
    if (!isThenable(result)) return result;
    return Promise.resolve(result).then(
      (value) => {
        channelContext.result = value;
        asyncStart.publish(channelContext);
        asyncEnd.publish(channelContext);
        return value;
      },
      (error: unknown) => {
        channelContext.error = error;
        errorChannel.publish(channelContext);
        asyncStart.publish(channelContext);
        asyncEnd.publish(channelContext);
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
