import type { ServerResponse } from "node:http";
import type { TreeEvent, TreeListener } from "../supervision/node.js";
import type { SupervisorSnapshot } from "../supervision/tree-snapshot.js";

/** What the dashboard reads from a tree. */
export interface DashboardSource {
  snapshot(): SupervisorSnapshot;
  subscribe(listener: TreeListener): () => void;
}

/** Recent transitions by node path, oldest first. */
export type TransitionHistory = Record<string, TreeEvent[]>;

/** Transitions kept per node. */
export const HISTORY_LENGTH = 50;
/** The longest a page waits for a fresh snapshot while it is open. */
export const SNAPSHOT_INTERVAL_MS = 500;

/**
 * The dashboard's live side: keeps the last transitions of every node (from `tree.subscribe`,
 * from the moment the dashboard is served) and streams them, and snapshots, to open pages.
 */
export class DashboardHub {
  readonly #source: DashboardSource;
  readonly #clients = new Set<ServerResponse>();
  readonly #history = new Map<string, TreeEvent[]>();
  readonly #unsubscribe: () => void;
  #timer: NodeJS.Timeout | undefined;
  #pending = false;

  constructor(source: DashboardSource) {
    this.#source = source;
    this.#unsubscribe = source.subscribe((event) => this.#transition(event));
  }

  snapshot(): SupervisorSnapshot {
    return this.#source.snapshot();
  }

  history(): TransitionHistory {
    return Object.fromEntries(this.#history);
  }

  /** An SSE stream: the history and a snapshot now, then every transition and fresh snapshots. */
  attach(response: ServerResponse): void {
    response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    response.socket?.setNoDelay(true);
    this.#clients.add(response);
    response.on("close", () => {
      this.#clients.delete(response);
      if (this.#clients.size === 0) this.#stopTimer();
    });
    write(response, "history", this.history());
    write(response, "snapshot", this.#safeSnapshot());
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#broadcast("snapshot", this.#safeSnapshot()), SNAPSHOT_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  close(): void {
    this.#unsubscribe();
    this.#stopTimer();
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }

  #transition(event: TreeEvent): void {
    let list = this.#history.get(event.path);
    if (list === undefined) this.#history.set(event.path, (list = []));
    list.push({ ...event });
    if (list.length > HISTORY_LENGTH) list.splice(0, list.length - HISTORY_LENGTH);
    if (this.#clients.size === 0) return;
    this.#broadcast("transition", event);
    // One snapshot after a burst of transitions (a restart is several), once they have settled.
    if (this.#pending) return;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      this.#broadcast("snapshot", this.#safeSnapshot());
    });
  }

  #safeSnapshot(): SupervisorSnapshot | { error: string } {
    try {
      return this.#source.snapshot();
    } catch (error) {
      return { error: String(error) };
    }
  }

  #broadcast(event: string, data: unknown): void {
    for (const client of this.#clients) write(client, event, data);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function write(response: ServerResponse, event: string, data: unknown): void {
  if (response.writableEnded || response.destroyed) return;
  response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
