/**
 * The parents a ROUTER child forwards output to — those that have sent it a call (in its
 * namespace) or a heartbeat; any other message does not make a peer — by routing identity, with the envelope prefix to
 * reach each (identity, plus the empty delimiter when that peer uses one). Identities are
 * compared by content, not by Buffer reference. Bounded: the least recently heard peer is
 * dropped first; an unreachable peer is removed when a send to it fails.
 */
export class PeerTable {
  readonly #peers = new Map<string, Buffer[]>();
  readonly #max: number;
  #last: Buffer | undefined;

  constructor(max = 256) {
    this.#max = max;
  }

  get size(): number {
    return this.#peers.size;
  }

  /** Notes the sender of a received message (`frames` = envelope + payload). */
  heard(frames: readonly Buffer[]): void {
    const identity = frames[0]!;
    // The common case — the same parent again — costs one 5-byte compare.
    if (this.#last !== undefined && identity.equals(this.#last)) return;
    this.#last = identity;
    const key = identity.toString("latin1");
    this.#peers.delete(key); // re-insert: Map order is recency order
    this.#peers.set(key, frames.slice(0, -1));
    if (this.#peers.size > this.#max) this.#peers.delete(this.#peers.keys().next().value!);
  }

  forget(key: string): void {
    this.#peers.delete(key);
    if (this.#last?.toString("latin1") === key) this.#last = undefined;
  }

  /** Envelope prefixes of every known peer, with the key to `forget` each by. */
  entries(): IterableIterator<[string, Buffer[]]> {
    return this.#peers.entries();
  }
}
