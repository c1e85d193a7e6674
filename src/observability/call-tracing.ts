import {
  context,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
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
  /** A stream (`worker.stream`): true; its call settles when the stream ends. */
  stream?: true;
  /** A stream's chunks received, set when it ends. */
  chunks?: number;
}

/** A traced stream (call-stream.ts): its span, and its call on the channel, stay open until `end()`. */
export interface StreamTrace {
  /**
   * The stream ended after `chunks` values: `cancelled` when it stopped on the parent's side
   * (break, signal, timeout); `error` undefined when it completed or its consumer stopped it.
   */
  end(chunks: number, cancelled: boolean, error: unknown): void;
}

/** Span attributes of a stream: the chunks received, and `true` when the parent cancelled it. */
export const STREAM_CHUNKS_ATTRIBUTE = "multifrost.stream.chunks";
export const STREAM_CANCELLED_ATTRIBUTE = "multifrost.stream.cancelled";

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

  /**
   * Like `trace()` for a stream: `send` sends its call with the span's metadata; the span ends,
   * and the channel's asyncStart/asyncEnd are published, at `end()`. A stream its consumer
   * stopped (`break`) is not an error: its span keeps status UNSET, marked cancelled.
   */
  traceStream(id: string, functionName: string, args: unknown[], send: (metadata: Metadata | undefined) => void): StreamTrace {
    const started = this.#tracer === undefined ? undefined : this.#startSpan(this.#tracer, functionName, { [STREAM_CHUNKS_ATTRIBUTE]: 0 });
    const channelContext: CallChannelContext | undefined = callChannel.hasSubscribers
      ? { functionName, args, workerPath: this.#path, id, stream: true }
      : undefined;
    if (channelContext === undefined) send(started?.metadata);
    else {
      callChannel.start.runStores(channelContext, () => {
        try {
          send(started?.metadata);
        } finally {
          callChannel.end.publish(channelContext);
        }
      });
    }
    return {
      end(chunks, cancelled, error) {
        if (started !== undefined) {
          const { span } = started;
          span.setAttribute(STREAM_CHUNKS_ATTRIBUTE, chunks);
          if (cancelled) span.setAttribute(STREAM_CANCELLED_ATTRIBUTE, true);
          if (error !== undefined) failSpan(span, error);
          span.end();
        }
        if (channelContext !== undefined) {
          channelContext.chunks = chunks;
          if (error !== undefined) {
            channelContext.error = error;
            callChannel.error.publish(channelContext);
          }
          callChannel.asyncStart.publish(channelContext);
          callChannel.asyncEnd.publish(channelContext);
        }
      },
    };
  }

  #span(functionName: string, send: SendCall): Promise<unknown> {
    const tracer = this.#tracer;
    if (tracer === undefined) return send(undefined);
    const { span, metadata } = this.#startSpan(tracer, functionName, undefined);
    const promise = send(metadata);
    promise.then(
      () => span.end(),
      (error: unknown) => {
        failSpan(span, error);
        span.end();
      },
    );
    return promise;
  }

  /** A CLIENT span for a call, a child of the active context, and the metadata carrying it. */
  #startSpan(tracer: Tracer, functionName: string, extra: Attributes | undefined): { span: Span; metadata: Metadata | undefined } {
    const parent = context.active();
    const span = tracer.startSpan(
      functionName,
      {
        kind: SpanKind.CLIENT,
        attributes: { "rpc.system": RPC_SYSTEM, "rpc.method": functionName, "multifrost.worker.path": this.#path, ...extra },
      },
      parent,
    );
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, span), carrier);
    // No propagator registered: nothing to carry, the message stays as it would be without tracing.
    return { span, metadata: carrier.traceparent === undefined && carrier.tracestate === undefined ? undefined : carrier };
  }
}
