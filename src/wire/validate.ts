import { APP_ID, DEFAULT_NAMESPACE } from "./constants.js";
import { decodeFrame } from "./codec.js";
import type { WireMessage } from "./messages.js";

/** Why an incoming frame was not accepted. Counted by the receiver; never thrown. */
export type RejectReason =
  | "undecodable"
  | "not-a-map"
  | "wrong-app"
  | "missing-type"
  | "missing-id"
  | "missing-function"
  | "bad-args"
  | "bad-namespace"
  | "bad-error"
  | "bad-output"
  | "bad-chunk"
  | "bad-credit"
  | "unknown-type";

/** A frame that failed validation; `id` is set when it was readable, so the sender can be told. */
export class RejectedFrame {
  constructor(
    readonly reason: RejectReason,
    readonly id: string | undefined,
    readonly type: string | undefined,
  ) {}
}

export type ParsedFrame = WireMessage | RejectedFrame;

/**
 * Decodes and validates a frame without ever throwing. Fills the defaults v4 peers rely on:
 * a missing `result` is `null` (Python omits it for None), a missing `namespace` is
 * "default", `clientName` (JS v4) is read as `client_name`.
 */
export function parseFrame(bytes: Uint8Array): ParsedFrame {
  let decoded: unknown;
  try {
    decoded = decodeFrame(bytes);
  } catch {
    return new RejectedFrame("undecodable", undefined, undefined);
  }
  if (typeof decoded !== "object" || decoded === null || Array.isArray(decoded) || ArrayBuffer.isView(decoded)) {
    return new RejectedFrame("not-a-map", undefined, undefined);
  }
  const message = decoded as Record<string, unknown>;
  const id = typeof message.id === "string" && message.id.length > 0 ? message.id : undefined;
  const type = typeof message.type === "string" ? message.type : undefined;
  if (message.app !== APP_ID) return new RejectedFrame("wrong-app", id, type);
  if (type === undefined) return new RejectedFrame("missing-type", id, undefined);

  switch (type) {
    case "call":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (typeof message.function !== "string" || message.function.length === 0) {
        return new RejectedFrame("missing-function", id, type);
      }
      if (message.args === undefined || message.args === null) message.args = [];
      else if (!Array.isArray(message.args)) return new RejectedFrame("bad-args", id, type);
      // nil counts as missing; any other non-string can match no namespace and is refused
      // (with an error reply) rather than silently ignored.
      if (message.namespace === undefined || message.namespace === null) message.namespace = DEFAULT_NAMESPACE;
      else if (typeof message.namespace !== "string") return new RejectedFrame("bad-namespace", id, type);
      if (message.client_name === undefined && typeof message.clientName === "string") {
        message.client_name = message.clientName;
      }
      if (message.stream !== undefined && !isCredit((message.stream as { credit?: unknown } | null)?.credit)) delete message.stream;
      break;
    case "response":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (message.result === undefined) message.result = null;
      break;
    case "error":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (typeof message.error !== "string") {
        if (message.error === undefined || message.error === null) message.error = "Error: Unknown error";
        else message.error = textOf(message.error);
      }
      if (message.stack !== undefined && typeof message.stack !== "string") delete message.stack;
      break;
    case "stdout":
    case "stderr":
      if (typeof message.output !== "string") {
        if (message.output === undefined || message.output === null) return new RejectedFrame("bad-output", id, type);
        message.output = textOf(message.output);
      }
      break;
    case "heartbeat":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (message.metadata !== undefined && (typeof message.metadata !== "object" || message.metadata === null || Array.isArray(message.metadata))) {
        delete message.metadata;
      }
      break;
    case "shutdown":
      break;
    case "cancel":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      break;
    case "chunk":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (!Number.isInteger(message.seq) || (message.seq as number) < 0) return new RejectedFrame("bad-chunk", id, type);
      if (message.value === undefined) message.value = null;
      break;
    case "credit":
      if (id === undefined) return new RejectedFrame("missing-id", undefined, type);
      if (!isCredit(message.n)) return new RejectedFrame("bad-credit", id, type);
      break;
    default:
      // Unknown types are ignored (spec §33.2); new features may ride on them.
      return new RejectedFrame("unknown-type", id, type);
  }
  return message as unknown as WireMessage;
}

/** A peer's non-string `error`/`output` as readable text: bin as UTF-8, JSON for maps and arrays (not "[object Object]"). */
function textOf(value: unknown): string {
  if (typeof value !== "object" || value === null) return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
  try {
    return JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item)) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A chunk count: an integer ≥ 0 (a negative initial credit would stall the stream forever). */
function isCredit(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
