import * as zmq from "zeromq";
import { SendQueue, type SendFailureFn } from "./send-queue.js";

/**
 * The socket actor: the only module that imports zeromq. A channel owns one socket, one
 * receive loop and one send queue. Parents use a DEALER, children a ROUTER (DESIGN §3).
 */

/**
 * Called with the payload and the frames it came in (ROUTER: identity [+ empty] + payload).
 * The frames array is handed to `reply`, which swaps the payload for the answer: one reply
 * per request, no envelope copy.
 */
export type FrameHandler = (payload: Buffer, frames: Buffer[]) => void;

const EMPTY = Buffer.alloc(0);

/**
 * zeromq's context allows 1,023 sockets by default; a parent connected to thousands of services
 * needs more. Only effective before the first socket exists, hence at load.
 */
const MAX_SOCKETS = 32_768;
if (zmq.context.maxSockets < MAX_SOCKETS) zmq.context.maxSockets = MAX_SOCKETS;

function endpointPort(endpoint: string | null): number {
  const match = endpoint ? /:(\d+)$/.exec(endpoint) : null;
  if (!match) throw new Error(`cannot read the port from endpoint ${String(endpoint)}`);
  return Number(match[1]);
}

/**
 * Socket options every channel uses. The send high-water mark is high: a send is refused (and
 * waits, see `Channel#writeWaiting`) when no peer can take it, or when this many messages already
 * wait in zeromq for a slow peer; the callers bound what they queue (pending calls, replies).
 */
const SOCKET_OPTIONS = { sendHighWaterMark: 100_000 } as const;

/** The largest message a channel accepts unless told otherwise: a bigger one drops the connection. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** What a channel may be given beyond the defaults. */
export interface ChannelOptions {
  /** Bytes; a peer that sends a bigger message is disconnected by zeromq. Default 64 MiB. */
  maxMessageSize?: number;
  /** Ask the process's ZAP handler (src/actors/zap.ts) about every peer, under this domain. */
  zapDomain?: string;
  /** CURVE server: this socket's secret key (Z85); peers must be CURVE clients. */
  curveServerSecretKey?: string;
  /** CURVE client: this socket's key pair and the server's public key (Z85). */
  curveClient?: { publicKey: string; secretKey: string; serverKey: string };
}

function socketOptions(options: ChannelOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { ...SOCKET_OPTIONS, maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_BYTES };
  if (options.zapDomain !== undefined) {
    out.zapDomain = options.zapDomain;
    // Fail closed: without a ZAP handler, libzmq would let every peer in.
    out.zapEnforceDomain = true;
  }
  if (options.curveServerSecretKey !== undefined) {
    out.curveServer = true;
    out.curveSecretKey = options.curveServerSecretKey;
  }
  if (options.curveClient !== undefined) {
    out.curvePublicKey = options.curveClient.publicKey;
    out.curveSecretKey = options.curveClient.secretKey;
    out.curveServerKey = options.curveClient.serverKey;
  }
  return out;
}

/**
 * Sends go through two modes:
 * - waiting (zeromq.js's default, `sendTimeout = -1`), until a message has come in: a send may
 *   stay pending until a peer connects, and the send queue waits for it;
 * - not waiting (`sendTimeout = 0`), once a message has come in (a peer is connected): a send
 *   completes or is refused at once, which spares zeromq.js a ZMQ_EVENTS query (two syscalls)
 *   per message. Without a high-water mark, a refusal (EAGAIN) means the peer has gone; the
 *   refused message is sent again waiting, and the channel waits until a message comes in again.
 */
abstract class Channel<S extends zmq.Dealer | zmq.Router, Item> {
  protected readonly socket: S;
  protected readonly queue: SendQueue<Item>;
  #closed = false;
  #loop: Promise<void> | undefined;
  #waiting = true;

  constructor(socket: S, onSendFailure: SendFailureFn<Item>) {
    this.socket = socket;
    this.queue = new SendQueue<Item>(
      (item) => this.write(item),
      onSendFailure,
      (item) => this.#writeWaiting(item),
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Messages queued but not yet handed to zeromq. */
  get sendBacklog(): number {
    return this.queue.length;
  }

  /** Binds on host, port 0 by default, and returns the port the OS chose. */
  async bind(host = "127.0.0.1", port = 0): Promise<number> {
    await this.bindEndpoint(`tcp://${host}:${port === 0 ? "*" : port}`);
    return endpointPort(this.socket.lastEndpoint);
  }

  /** Binds one more endpoint (e.g. `ipc://…`); sends wait meanwhile. */
  async bindEndpoint(endpoint: string): Promise<void> {
    const binding = this.socket.bind(endpoint);
    this.queue.holdUntil(binding);
    await binding;
  }

  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }

  /** Starts the single receive loop. */
  listen(onFrames: (frames: Buffer[]) => void, onLoopError: (error: unknown) => void): void {
    if (this.#loop) throw new Error("receive loop already running");
    this.#loop = (async () => {
      try {
        for (;;) {
          const frames = await this.socket.receive();
          if (this.#waiting) this.#stopWaiting();
          onFrames(frames);
          // What onFrames settled runs first: a caller awaiting a reply sends its next call
          // before this loop asks for the next message. Were the loop parked in receive(),
          // zeromq.js would check the socket for input after every send.
          await undefined;
        }
      } catch (error) {
        if (!this.#closed) onLoopError(error);
      }
    })();
  }

  /** Waits until everything queued has been handed to zeromq (bounded by the caller). */
  drained(): Promise<void> {
    return this.queue.drained();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.queue.close(new Error("socket closed"));
    this.socket.close();
  }

  protected abstract write(item: Item): Promise<void>;

  /** A message came in, so a peer is connected: sends stop waiting. */
  #stopWaiting(): void {
    if (this.#closed) return;
    this.#waiting = false;
    this.socket.sendTimeout = 0;
  }

  /** Sends a refused message again, waiting as long as it takes; the send queue holds the rest meanwhile. */
  async #writeWaiting(item: Item): Promise<void> {
    if (!this.#waiting) {
      this.#waiting = true;
      this.socket.sendTimeout = -1;
    }
    await this.write(item);
  }
}

/** The parent's socket: sends `[empty, payload]`, receives `[empty, payload]`. */
export class DealerChannel extends Channel<zmq.Dealer, Buffer> {
  constructor(onSendFailure: (tag: string | undefined, error: unknown) => void, options: ChannelOptions = {}) {
    super(new zmq.Dealer({ ...socketOptions(options), linger: 0 }), (_item, tag, error) => onSendFailure(tag, error));
  }

  /**
   * Calls `handler` when a handshake with a peer fails: refused by the peer's ZAP (an
   * unauthorized CURVE key), CURVE keys that do not match, or mechanisms that differ (plain vs CURVE).
   */
  onHandshakeFailure(handler: (reason: string) => void): void {
    for (const type of ["handshake:error:auth", "handshake:error:protocol", "handshake:error:other"] as const) {
      this.socket.events.on(type, (event) => {
        if (!this.closed) handler(`${type.slice("handshake:error:".length)}: ${event.error?.message ?? "handshake failed"}`);
      });
    }
  }

  send(payload: Buffer, tag?: string): void {
    this.queue.push(payload, tag);
  }

  /**
   * A bound socket: calls `handler` when the last connected peer disconnects (its process closed
   * the socket or died). Counting peers keeps a stranger's connection that comes and goes from
   * looking like the child's.
   */
  onLastPeerGone(handler: () => void): void {
    let peers = 0;
    this.socket.events.on("accept", () => {
      peers++;
    });
    this.socket.events.on("disconnect", () => {
      peers = Math.max(0, peers - 1);
      if (peers === 0 && !this.closed) handler();
    });
  }

  /** What has not been handed to zeromq yet (see `SendQueue#takeUnsent`): payloads and their tags. */
  takeUnsent(): [Buffer[], (string | undefined)[]] {
    return this.queue.takeUnsent();
  }

  /** Receives payloads: the last frame of whatever arrives (peers differ on the empty delimiter). */
  onPayload(handler: (payload: Buffer) => void, onLoopError: (error: unknown) => void): void {
    this.listen((frames) => {
      const payload = frames[frames.length - 1];
      if (payload !== undefined) handler(payload);
    }, onLoopError);
  }

  protected write(payload: Buffer): Promise<void> {
    return this.socket.send([EMPTY, payload]);
  }
}

/** The child's socket. Replies reuse the request's envelope, so peers with or without the empty delimiter both work. */
export class RouterChannel extends Channel<zmq.Router, Buffer[]> {
  /** `onSendFailure` gets the tag given to `send` (e.g. which peer), undefined for replies. */
  constructor(onSendFailure: (tag: string | undefined, error: unknown) => void, options: ChannelOptions = {}) {
    // mandatory: without it, replies beyond the HWM to a slow reader are silently dropped.
    super(new zmq.Router({ ...socketOptions(options), linger: 500, mandatory: true }), (_item, tag, error) => onSendFailure(tag, error));
  }

  /** Sends a message that answers no request (e.g. forwarded output) along `envelope`. */
  send(envelope: readonly Buffer[], payload: Buffer, tag?: string): void {
    this.queue.push([...envelope, payload], tag);
  }

  /**
   * A connecting socket: `onUp` when a connection to the peer is established (ZMTP handshake
   * done: a stranger listening on the port is no peer), `onDown` when it drops (zeromq then keeps
   * reconnecting by itself). Call before `connect`, or the first connection goes unseen.
   */
  watchConnection(onUp: () => void, onDown: () => void): void {
    this.socket.events.on("handshake", () => {
      if (!this.closed) onUp();
    });
    this.socket.events.on("disconnect", () => {
      if (!this.closed) onDown();
    });
  }

  /** Sends `payload` back along the request's envelope (the request's frames are reused). */
  reply(requestFrames: Buffer[], payload: Buffer): void {
    requestFrames[requestFrames.length - 1] = payload;
    this.queue.push(requestFrames);
  }

  /** Receives `(payload, envelope)`; frames with no identity + payload are dropped. */
  onPayload(handler: FrameHandler, onMalformed: () => void, onLoopError: (error: unknown) => void): void {
    this.listen((frames) => {
      if (frames.length < 2) {
        onMalformed();
        return;
      }
      handler(frames[frames.length - 1]!, frames);
    }, onLoopError);
  }

  protected write(frames: Buffer[]): Promise<void> {
    return this.socket.send(frames);
  }
}
