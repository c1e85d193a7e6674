import {
  context,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { tracingChannel } from "node:diagnostics_channel";
import type { Metadata } from "../wire/messages.js";

/**
 * Tracing of the parent's calls (docs/observability.md, Tracing). With a tracer provider
 * registered (checked once per worker, like the metrics), each call is a CLIENT span named after
 * the function, and the W3C `traceparent`/`tracestate` the registered propagator writes go in the
 * call's `metadata`. The Node `diagnostics_channel` TracingChannel `multifrost:call` publishes
 * start/end/asyncStart/asyncEnd/error as `tracePromise` does, only while it has subscribers.
 * Neither: no span, no carrier, no metadata and no closure per call.
 */

export const CALL_CHANNEL = "multifrost:call";

/** What `multifrost:call` subscribers receive (`result` or `error` is set when the call settles). */
export interface CallChannelContext {
  functionName: string;
  args: unknown[];
  /** The worker's name or tree path. */
  workerPath: string;
  /** The call message's id. */
  id: string;
  result?: unknown;
  error?: unknown;
}

const callChannel = tracingChannel<unknown, CallChannelContext>(CALL_CHANNEL);

const RPC_SYSTEM = "multifrost";

/** The "multifrost" tracer, or undefined while no tracer provider is registered (the API's no-op). */
export function registeredTracer(): Tracer | undefined {
  let provider: TracerProvider = trace.getTracerProvider();
  if (provider instanceof ProxyTracerProvider) provider = provider.getDelegate();
  if (provider.constructor.name === "NoopTracerProvider") return undefined;
  return trace.getTracer(RPC_SYSTEM);
}

/** Marks a span failed by `error`: status ERROR with its message, the exception recorded. */
export function failSpan(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setAttribute("error.type", error.name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.recordException(String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

/** Sends the call under `id`, with `metadata` in the message when defined. */
export type SendCall = (metadata: Metadata | undefined) => Promise<unknown>;

export class CallTracing {
  readonly #path: string;
  readonly #tracer = registeredTracer();

  constructor(workerPath: string) {
    this.#path = workerPath;
  }

  /** Whether calls must go through `trace()`: an SDK is registered or `multifrost:call` has subscribers. */
  get on(): boolean {
    return this.#tracer !== undefined || callChannel.hasSubscribers;
  }

  trace(id: string, functionName: string, args: unknown[], send: SendCall): Promise<unknown> {
    if (!callChannel.hasSubscribers) return this.#span(functionName, send);
    const channelContext: CallChannelContext = { functionName, args, workerPath: this.#path, id };
    return callChannel.tracePromise(() => this.#span(functionName, send), channelContext);
  }

  #span(functionName: string, send: SendCall): Promise<unknown> {
    const tracer = this.#tracer;
    if (tracer === undefined) return send(undefined);
    const parent = context.active();
    const span = tracer.startSpan(
      functionName,
      {
        kind: SpanKind.CLIENT,
        attributes: { "rpc.system": RPC_SYSTEM, "rpc.method": functionName, "multifrost.worker.path": this.#path },
      },
      parent,
    );
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, span), carrier);
    // No propagator registered: nothing to carry, the message stays as it would be without tracing.
    const promise = send(carrier.traceparent === undefined && carrier.tracestate === undefined ? undefined : carrier);
    promise.then(
      () => span.end(),
      (error: unknown) => {
        failSpan(span, error);
        span.end();
      },
    );
    return promise;
  }
}
