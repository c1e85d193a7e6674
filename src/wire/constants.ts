/** The application id every v4 message carries. */
export const APP_ID = "comlink_ipc_v4";

export const MessageType = {
  CALL: "call",
  RESPONSE: "response",
  ERROR: "error",
  STDOUT: "stdout",
  STDERR: "stderr",
  HEARTBEAT: "heartbeat",
  SHUTDOWN: "shutdown",
  /** Multifrost extension (docs/wire.md, Cancellation): v4 peers ignore it. */
  CANCEL: "cancel",
  /** Multifrost extension (docs/wire.md, Streaming): one value of a streamed call (child → parent). */
  CHUNK: "chunk",
  /** Multifrost extension (docs/wire.md, Streaming): more chunks a stream may send (parent → child). */
  CREDIT: "credit",
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const DEFAULT_NAMESPACE = "default";

/** Spawn mode: the parent's port, and the hint that the child runs as a worker. */
export const ENV_PORT = "COMLINK_ZMQ_PORT";
export const ENV_WORKER_MODE = "COMLINK_WORKER_MODE";
/**
 * Our extension: the parent's private endpoint (`ipc://` in a directory only its user can enter).
 * Multifrost children connect there instead of COMLINK_ZMQ_PORT; v4 children ignore it.
 */
export const ENV_ENDPOINT = "MULTIFROST_ZMQ_ENDPOINT";

/** The child-side port range the spec allows (§10.1.5). */
export const MIN_PORT = 1024;
export const MAX_PORT = 65535;
