import type { PeerTable } from "../actors/peer-table.js";
import type { RouterChannel } from "../actors/zmq-channel.js";
import { createOutput, encodeMessage, nextMessageId } from "../wire/index.js";

/**
 * Sends what a child prints to its parents as stdout/stderr messages, one per line, to every
 * parent that called or pinged. Bounded: output waiting in the send queue beyond `maxBacklogBytes`
 * (parents not reading fast enough) is dropped until the queue has drained, then one line says
 * how many lines were lost.
 */
export class OutputForwarder {
  readonly #channel: RouterChannel;
  readonly #peers: PeerTable;
  readonly #stats: { linesForwarded: number };
  readonly #maxBacklogBytes: number;
  /** Output bytes queued since the send queue was last seen empty (an upper bound of what waits). */
  #backlogBytes = 0;
  /** Forwarded output is being dropped until the send queue drains. */
  #held = false;
  #dropped = 0;
  #unreported = 0;

  constructor(channel: RouterChannel, peers: PeerTable, stats: { linesForwarded: number }, maxBacklogBytes: number) {
    this.#channel = channel;
    this.#peers = peers;
    this.#stats = stats;
    this.#maxBacklogBytes = maxBacklogBytes;
  }

  /** Lines dropped because the parents did not read them fast enough. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Sends one printed line to every parent that called or pinged; false when there is none yet
   * (the line is then printed here). A line the parents cannot take fast enough is dropped.
   */
  forwardLine(stream: "stdout" | "stderr", line: string): boolean {
    const channel = this.#channel;
    if (channel.closed || this.#peers.size === 0) return false;
    if (this.#held) {
      this.#dropped++;
      this.#unreported++;
      return true;
    }
    if (channel.sendBacklog === 0) this.#backlogBytes = 0;
    const payload = encodeMessage(createOutput(nextMessageId(), stream, line));
    // Each queued message also costs its frame array and Buffer objects: about 200 bytes more.
    const bytes = (payload.length + 200) * this.#peers.size;
    if (this.#backlogBytes + bytes > this.#maxBacklogBytes && channel.sendBacklog > 0) {
      this.#hold(channel);
      this.#dropped++;
      this.#unreported++;
      return true;
    }
    this.#backlogBytes += bytes;
    this.#send(channel, payload);
    return true;
  }

  #send(channel: RouterChannel, payload: Buffer): void {
    for (const [peer, envelope] of this.#peers.entries()) channel.send(envelope, payload, peer);
    this.#stats.linesForwarded++;
  }

  /** Drops forwarded lines until the send queue has drained, then says how many were lost. */
  #hold(channel: RouterChannel): void {
    this.#held = true;
    void channel.drained().then(() => {
      this.#held = false;
      this.#backlogBytes = 0;
      const lost = this.#unreported;
      this.#unreported = 0;
      if (lost === 0 || channel.closed || this.#peers.size === 0) return;
      const text = `[multifrost] ${lost} output line${lost === 1 ? "" : "s"} dropped: the parents did not read them fast enough`;
      this.#send(channel, encodeMessage(createOutput(nextMessageId(), "stderr", text)));
    });
  }
}
