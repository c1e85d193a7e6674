import * as zmq from "zeromq";

/**
 * The process's ZAP handler (ZeroMQ Authentication Protocol, RFC 27). libzmq asks it about every
 * connection to a socket that has a `zapDomain` (NULL mechanism) or is a CURVE server, over
 * `inproc://zeromq.zap.01` in the socket's context; there is one handler per context, so policies
 * are registered per domain. A domain with no policy is refused.
 *
 * The `address` libzmq gives: for TCP the peer's IP only; for IPC `localhost:<uid>:<gid>:<pid>`
 * from the kernel (SO_PEERCRED).
 */

export interface ZapRequest {
  domain: string;
  /** TCP: the peer's IP; IPC: "localhost:uid:gid:pid". */
  address: string;
  mechanism: "NULL" | "PLAIN" | "CURVE" | string;
  /** CURVE: the client's 32-byte public key. */
  credentials: readonly Buffer[];
}

/** Allow (true) or refuse with a reason (a string, shown in the peer's handshake error and logs). */
export type ZapPolicy = (request: ZapRequest) => true | string | Promise<true | string>;

const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

class ZapHandler {
  readonly #policies = new Map<string, ZapPolicy>();
  #socket: zmq.Router | undefined;
  /** Refusals by domain, for tests and stats. */
  readonly refused = new Map<string, number>();

  /** Registers `policy` for `domain`; the returned function unregisters it. */
  register(domain: string, policy: ZapPolicy): () => void {
    if (this.#policies.has(domain)) throw new Error(`ZAP domain '${domain}' is already registered`);
    this.#policies.set(domain, policy);
    this.#start();
    return () => {
      if (this.#policies.get(domain) === policy) this.#policies.delete(domain);
      // A socket waiting to receive keeps the process alive: no policy, no handler.
      if (this.#policies.size === 0) this.#stop();
    };
  }

  #start(): void {
    if (this.#socket !== undefined) return;
    const socket = new zmq.Router({ linger: 0 });
    this.#socket = socket;
    void (async () => {
      await bindRetrying(socket);
      for await (const frames of socket) void this.#answer(socket, frames);
    })().catch((error: unknown) => {
      // Sockets that ask for ZAP fail closed (zapEnforceDomain): no handler, no peer.
      if (this.#socket === socket) process.stderr.write(`multifrost: the ZAP handler stopped: ${String(error)}\n`);
    });
  }

  #stop(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.close();
  }

  async #answer(socket: zmq.Router, frames: Buffer[]): Promise<void> {
    const split = frames.findIndex((frame) => frame.length === 0);
    const envelope = frames.slice(0, split + 1);
    const [version, requestId, domainFrame, address, _identity, mechanism, ...credentials] = frames.slice(split + 1);
    const domain = domainFrame?.toString() ?? "";
    let verdict: true | string;
    if (version?.toString() !== "1.0") verdict = "unsupported ZAP version";
    else {
      const policy = this.#policies.get(domain);
      try {
        verdict = policy
          ? await policy({ domain, address: address?.toString() ?? "", mechanism: mechanism?.toString() ?? "", credentials })
          : "unknown domain";
      } catch (error) {
        verdict = `policy failed: ${String(error)}`;
      }
    }
    if (verdict !== true) this.refused.set(domain, (this.refused.get(domain) ?? 0) + 1);
    const status = verdict === true ? ["200", "OK"] : ["400", verdict.slice(0, 200)];
    await socket.send([...envelope, "1.0", requestId ?? Buffer.alloc(0), ...status, "", ""]).catch(() => undefined);
  }
}

/**
 * A handler closed a moment ago may still hold the endpoint (zeromq closes sockets in the
 * background): try again briefly rather than run without one.
 */
async function bindRetrying(socket: zmq.Router): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await socket.bind(ZAP_ENDPOINT);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "EADDRINUSE" || attempt >= 200 || socket.closed) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/**
 * One per process, whichever copy of this module runs (`multifrost/child` is a bundle with its own
 * copy, scripts/build-child.mjs): a second handler could not bind the endpoint, and the sockets
 * relying on it would refuse every peer. The first copy loaded creates it.
 */
const HANDLER = Symbol.for("multifrost.zapHandler.v1");
export const zapHandler: ZapHandler = ((globalThis as { [HANDLER]?: ZapHandler })[HANDLER] ??= new ZapHandler());
