import { tracingChannel } from "node:diagnostics_channel";
import { IncomingCall, runInCall } from "../child/call-context.js";
import type { CallMessage } from "../wire/messages.js";

/**
 * The child side of tracing (docs/observability.md, Tracing): every handler runs as the handling
 * of its call (`this.call`); with a tracer provider registered in the worker it runs in a SERVER
 * span continuing the caller's `traceparent`; while `multifrost:handle` has subscribers, the
 * channel sees start/end (and asyncStart/asyncEnd for async handlers) and error. This module does
 * not import `@opentelemetry/api` (a lean child never loads it): the SERVER span lives in
 * handle-span.ts, imported only when the application registered a tracer provider.
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

/**
 * Runs a handler (`run`) in a SERVER span continuing the caller's trace (see handle-span.ts); for
 * a stream call (`streaming`) the span lasts until the generator it returns is done.
 */
export type ServerSpan = (incoming: IncomingCall, run: () => unknown, streaming: boolean) => unknown;

/**
 * The SERVER-span runner when the application registered an OpenTelemetry tracer provider, else
 * undefined. Registering one sets the API's global (`Symbol.for("opentelemetry.js.api.1")`, key
 * `trace`); without it `@opentelemetry/api` is not even imported.
 */
export function loadServerSpan(): Promise<ServerSpan | undefined> | undefined {
  const api = (globalThis as Record<symbol, unknown>)[Symbol.for("opentelemetry.js.api.1")];
  if (typeof api !== "object" || api === null || !("trace" in api)) return undefined; // synchronously: no await in run()
  return import("./handle-span.js").then(({ serverSpan }) => serverSpan());
}

/** How a worker invokes a handler for a call (the Dispatcher's `invoke` option). */
export function callInvoker(inSpan: ServerSpan | undefined): (handler: Handler, call: CallMessage) => unknown {
  return (handler, call) => {
    const incoming = new IncomingCall(call);
    if (inSpan === undefined && !handleChannel.hasSubscribers) return runInCall(incoming, handler, call.args);
    const run = (): unknown => runInCall(incoming, handler, call.args);
    if (!handleChannel.hasSubscribers) return inSpan!(incoming, run, call.stream !== undefined);
    const channelContext: HandleChannelContext = { functionName: call.function, args: call.args, id: call.id };
    return traced(channelContext, inSpan === undefined ? run : () => inSpan(incoming, run, call.stream !== undefined));
  };
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
