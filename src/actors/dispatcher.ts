import PQueue from "p-queue";
import { EncodeError } from "../errors.js";
import {
  createError,
  createResponse,
  encodeMessage,
  formatRemoteError,
  prepareForWire,
  type CallMessage,
  type WireMessage,
} from "../wire/index.js";

/**
 * The child-side call dispatcher: looks the function up in a fixed table, runs it under a
 * p-queue concurrency bound (async handlers overlap) and encodes the reply. Replies go to
 * `send`; nothing here touches a socket.
 */
export type Handler = (...args: unknown[]) => unknown;

export interface DispatcherOptions {
  /** Calls run at once; further calls wait in order. */
  concurrency: number;
  /** Names that answer with the list of callable names (v4 `listFunctions`/`list_functions`). */
  listNames?: readonly string[];
}

export class Dispatcher {
  readonly #handlers: ReadonlyMap<string, Handler>;
  readonly #names: string[];
  readonly #listNames: ReadonlySet<string>;
  readonly #queue: PQueue;

  constructor(handlers: ReadonlyMap<string, Handler>, options: DispatcherOptions) {
    this.#handlers = handlers;
    this.#names = [...handlers.keys()].sort();
    this.#listNames = new Set(options.listNames ?? ["listFunctions", "list_functions"]);
    this.#queue = new PQueue({ concurrency: options.concurrency });
  }

  get functionNames(): readonly string[] {
    return this.#names;
  }

  /** Calls running plus calls waiting for a slot. */
  get inFlight(): number {
    return this.#queue.pending + this.#queue.size;
  }

  /** Resolves when no call is running or waiting. */
  idle(): Promise<void> {
    return this.#queue.onIdle();
  }

  /** Runs a validated call and hands the encoded reply to `send`. Never throws. */
  dispatch(call: CallMessage, send: (reply: Buffer) => void): void {
    const name = call.function;
    if (this.#listNames.has(name)) {
      send(encodeMessage(createResponse(call.id, this.#names)));
      return;
    }
    const handler = this.#handlers.get(name);
    if (handler === undefined) {
      const error = name.startsWith("_") || name.startsWith("#")
        ? `PermissionError: Cannot call private method '${name}'`
        : `AttributeError: Function '${name}' not found`;
      send(encodeMessage(createError(call.id, error)));
      return;
    }
    void this.#queue.add(() => this.#run(call, handler, send));
  }

  async #run(call: CallMessage, handler: Handler, send: (reply: Buffer) => void): Promise<void> {
    let reply: WireMessage;
    try {
      const result = await handler(...call.args);
      reply = createResponse(call.id, prepareForWire(result, "result"));
    } catch (thrown) {
      const { error, stack } = formatRemoteError(thrown);
      reply = createError(call.id, error, stack);
    }
    send(encodeReply(reply));
  }
}

/** Encodes a reply; a result msgpack cannot carry becomes an error reply instead of a lost call. */
function encodeReply(reply: WireMessage): Buffer {
  try {
    return encodeMessage(reply);
  } catch (thrown) {
    const error = thrown instanceof EncodeError ? thrown : new EncodeError("result", String(thrown));
    return encodeMessage(createError(reply.id, `EncodeError: ${error.message}`));
  }
}
