import type { RouterChannel } from "../actors/zmq-channel.js";

const PARENT_WATCH_MS = 1000;

/**
 * Spawn mode: a parent that died without stopping us must not leave us running. Two signs tell:
 * our ppid changes, or the connection to the parent stays down for the orphan grace.
 */
export class ParentWatch {
  readonly #gone: () => void;
  readonly #orphanGraceMs: number | false;
  #interval: NodeJS.Timeout | undefined;
  #orphanTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `gone` is called when the parent looks dead (possibly more than once). */
  constructor(gone: () => void, orphanGraceMs: number | false) {
    this.#gone = gone;
    this.#orphanGraceMs = orphanGraceMs;
  }

  /** Watches our ppid: it changes when the parent dies. */
  watchPpid(): void {
    const parentPid = process.ppid;
    this.#interval = setInterval(() => {
      if (process.ppid !== parentPid) this.#gone();
    }, PARENT_WATCH_MS);
    this.#interval.unref();
  }

  /**
   * A parent behind a wrapper can die without changing our ppid; its connection dropping tells.
   * Only a connection that once was counts, so a slow parent is not mistaken for a dead one.
   */
  watchConnection(channel: RouterChannel): void {
    const graceMs = this.#orphanGraceMs;
    if (graceMs === false) return;
    let connected = false;
    channel.watchConnection(
      () => {
        connected = true;
        clearTimeout(this.#orphanTimer);
        this.#orphanTimer = undefined;
      },
      () => {
        if (!connected || this.#orphanTimer !== undefined || this.#stopped) return;
        this.#orphanTimer = setTimeout(this.#gone, graceMs);
        this.#orphanTimer.unref();
      },
    );
  }

  /** Stops watching (the worker is stopping). */
  stop(): void {
    this.#stopped = true;
    if (this.#interval) clearInterval(this.#interval);
    clearTimeout(this.#orphanTimer);
  }
}
