import { APP_ID, DEFAULT_NAMESPACE, MessageType } from "./constants.js";

/** Any value msgpack can carry between v4 peers. */
export type WireValue = unknown;

/** Free-form metadata; v4 peers put heartbeat times and correlation ids here. */
export type Metadata = Record<string, unknown>;

interface BaseMessage {
  app: typeof APP_ID;
  id: string;
  timestamp: number;
  metadata?: Metadata;
}

export interface CallMessage extends BaseMessage {
  type: "call";
  function: string;
  args: WireValue[];
  namespace: string;
  client_name?: string;
  /** Multifrost extension (docs/wire.md, Streaming): the caller wants the result as a stream. */
  stream?: { credit: number };
}

export interface ResponseMessage extends BaseMessage {
  type: "response";
  /** Always present once validated (a peer that omitted it is read as `null`). */
  result: WireValue;
}

export interface ErrorMessage extends BaseMessage {
  type: "error";
  /** `"<Type>: <message>"`; Python peers append a traceback after a newline. */
  error: string;
  /** Multifrost extension: the remote stack, when the peer sent one separately. */
  stack?: string;
}

export interface OutputMessage extends BaseMessage {
  type: "stdout" | "stderr";
  output: string;
}

export interface HeartbeatMessage extends BaseMessage {
  type: "heartbeat";
}

export interface ShutdownMessage extends BaseMessage {
  type: "shutdown";
}

/**
 * Multifrost extension (docs/wire.md, Cancellation): the caller no longer wants the reply of the
 * call whose `id` this carries (the call's own id: ids are per call, so no second field is needed).
 */
export interface CancelMessage extends BaseMessage {
  type: "cancel";
}

/** Multifrost extension (docs/wire.md, Streaming): value number `seq` of the stream of call `id`. */
export interface ChunkMessage extends BaseMessage {
  type: "chunk";
  seq: number;
  value: WireValue;
}

/** Multifrost extension (docs/wire.md, Streaming): the stream of call `id` may send `n` more chunks. */
export interface CreditMessage extends BaseMessage {
  type: "credit";
  n: number;
}

export type WireMessage =
  | CallMessage
  | ResponseMessage
  | ErrorMessage
  | OutputMessage
  | HeartbeatMessage
  | ShutdownMessage
  | CancelMessage
  | ChunkMessage
  | CreditMessage;

function now(): number {
  return Date.now() / 1000;
}

export function createCall(
  id: string,
  functionName: string,
  args: WireValue[],
  namespace: string = DEFAULT_NAMESPACE,
  clientName?: string,
  metadata?: Metadata,
  stream?: { credit: number },
): CallMessage {
  const message: CallMessage = {
    app: APP_ID,
    id,
    type: MessageType.CALL,
    timestamp: now(),
    function: functionName,
    args,
    namespace,
  };
  if (clientName !== undefined) message.client_name = clientName;
  // Only when given: a call without metadata stays byte-identical to a v4 call.
  if (metadata !== undefined) message.metadata = metadata;
  if (stream !== undefined) message.stream = stream;
  return message;
}

export function createResponse(id: string, result: WireValue): ResponseMessage {
  return { app: APP_ID, id, type: MessageType.RESPONSE, timestamp: now(), result: result === undefined ? null : result };
}

export function createError(id: string, error: string, stack?: string): ErrorMessage {
  const message: ErrorMessage = { app: APP_ID, id, type: MessageType.ERROR, timestamp: now(), error };
  if (stack !== undefined) message.stack = stack;
  return message;
}

export function createOutput(id: string, stream: "stdout" | "stderr", output: string): OutputMessage {
  return { app: APP_ID, id, type: stream, timestamp: now(), output };
}

export function createHeartbeat(id: string): HeartbeatMessage {
  const timestamp = now();
  return { app: APP_ID, id, type: MessageType.HEARTBEAT, timestamp, metadata: { hb_timestamp: timestamp } };
}

/**
 * The child's answer to a heartbeat: same id, the request's metadata kept (JS v4 parents read
 * `hb_timestamp` from it) plus `hb_response: true` (what Python v4 children send).
 */
export function createHeartbeatReply(request: HeartbeatMessage): HeartbeatMessage {
  return {
    app: APP_ID,
    id: request.id,
    type: MessageType.HEARTBEAT,
    timestamp: now(),
    metadata: { ...request.metadata, hb_response: true },
  };
}

export function createShutdown(id: string): ShutdownMessage {
  return { app: APP_ID, id, type: MessageType.SHUTDOWN, timestamp: now() };
}

/** Cancels the call `callId` (sent with the call's own id). */
export function createCancel(callId: string): CancelMessage {
  return { app: APP_ID, id: callId, type: MessageType.CANCEL, timestamp: now() };
}

export function createChunk(callId: string, seq: number, value: WireValue): ChunkMessage {
  return { app: APP_ID, id: callId, type: MessageType.CHUNK, timestamp: now(), seq, value: value === undefined ? null : value };
}

export function createCredit(callId: string, n: number): CreditMessage {
  return { app: APP_ID, id: callId, type: MessageType.CREDIT, timestamp: now(), n };
}

/** Renders any thrown value as the v4 error string `"<Type>: <message>"`. */
export function formatRemoteError(thrown: unknown): { error: string; stack: string | undefined } {
  if (thrown instanceof Error) {
    const type = thrown.name || thrown.constructor?.name || "Error";
    return { error: `${type}: ${thrown.message}`, stack: thrown.stack };
  }
  return { error: `Error: ${String(thrown)}`, stack: undefined };
}

const TYPE_PREFIX = /^([A-Za-z_$][\w$.]*): /;

/**
 * Splits a v4 error string into type, message and stack. Python peers send
 * `"ValueError: msg\nTraceback ..."`; JS v4 peers send only the message.
 */
export function parseRemoteError(error: string, stack?: string): { type: string; message: string; stack: string | undefined } {
  const match = TYPE_PREFIX.exec(error);
  const type = match ? match[1]! : "Error";
  let rest = match ? error.slice(match[0].length) : error;
  let remoteStack = stack;
  if (remoteStack === undefined) {
    const newline = rest.indexOf("\n");
    if (newline >= 0) {
      remoteStack = rest.slice(newline + 1);
      rest = rest.slice(0, newline);
    }
  }
  return { type, message: rest, stack: remoteStack };
}
