import type { Etcd3, Watcher } from "etcd3";
import { errorSummary, RegistryError } from "../errors.js";
import type { InstancesListener, ServiceEntry } from "./registry.js";

/**
 * Besides the watch, each watched service is read again this often: a watch that went deaf (a
 * stream to a stalled endpoint, a cancelled watch not yet replaced) delays news by this much at worst.
 */
export const WATCH_REREAD_MS = 5000;
/** A watch etcd cancelled (compaction, a lost leader) is created again after this, doubling to the max. */
const RECREATE_MS = { first: 200, max: 5000 };

interface ServiceWatch {
  readonly serviceId: string;
  readonly prefix: string;
  readonly listeners: Set<InstancesListener>;
  watcher: Watcher | undefined;
  /** The instances last read; undefined until the first read succeeded. */
  last: readonly ServiceEntry[] | undefined;
  lastError: RegistryError | undefined;
  reading: boolean;
  readAgain: boolean;
  closed: boolean;
  recreateMs: number;
  recreateTimer: NodeJS.Timeout | undefined;
}

/**
 * One etcd watch per watched service id, shared by every listener of this process. Each event (a
 * put, a delete, the watch (re)connecting after an outage) triggers one fresh read of the service's
 * instances, which is what listeners get: a whole list, never a diff to replay. Reads never overlap:
 * events during a read cause one more read after it. A watch etcd ends is created again, and every
 * watched service is re-read every WATCH_REREAD_MS whatever the watch says.
 */
export class EtcdWatches {
  readonly #client: Etcd3;
  readonly #read: (serviceId: string) => Promise<ServiceEntry[]>;
  readonly #watches = new Map<string, ServiceWatch>();
  #rereadTimer: NodeJS.Timeout | undefined;

  constructor(client: Etcd3, read: (serviceId: string) => Promise<ServiceEntry[]>) {
    this.#client = client;
    this.#read = read;
  }

  watch(serviceId: string, prefix: string, listener: InstancesListener): () => void {
    let watch = this.#watches.get(serviceId);
    if (watch === undefined) {
      const created: ServiceWatch = {
        serviceId,
        prefix,
        listeners: new Set(),
        watcher: undefined,
        last: undefined,
        lastError: undefined,
        reading: false,
        readAgain: false,
        closed: false,
        recreateMs: RECREATE_MS.first,
        recreateTimer: undefined,
      };
      watch = created;
      this.#watches.set(serviceId, created);
      this.#startWatcher(created);
      void this.#refresh(created);
      this.#rereadTimer ??= setInterval(() => {
        for (const each of this.#watches.values()) void this.#refresh(each);
      }, WATCH_REREAD_MS).unref();
    } else if (watch.last !== undefined) {
      const last = watch.last;
      const shared = watch;
      queueMicrotask(() => {
        if (shared.listeners.has(listener)) listener(last);
      });
    }
    watch.listeners.add(listener);
    const shared = watch;
    return () => {
      shared.listeners.delete(listener);
      if (shared.listeners.size > 0 || shared.closed) return;
      this.#stop(shared);
    };
  }

  /** The last failure to read or watch `serviceId`, while it has not been read successfully since. */
  lastError(serviceId: string): RegistryError | undefined {
    return this.#watches.get(serviceId)?.lastError;
  }

  close(): void {
    for (const watch of [...this.#watches.values()]) this.#stop(watch);
  }

  #startWatcher(watch: ServiceWatch): void {
    const watcher = this.#client.watch().prefix(watch.prefix).watcher();
    watch.watcher = watcher;
    const refresh = (): void => void this.#refresh(watch);
    watcher.on("connected", () => {
      watch.recreateMs = RECREATE_MS.first;
      refresh();
    });
    watcher.on("put", refresh);
    watcher.on("delete", refresh);
    // etcd3 reconnects a dropped stream by itself ("connected" again); an `error` means etcd
    // cancelled the watch (e.g. its revision was compacted away) and etcd3 dropped it: make another.
    watcher.on("disconnected", () => undefined);
    watcher.on("error", (error) => {
      watch.lastError = new RegistryError(`etcd watch of '${watch.serviceId}' failed: ${errorSummary(error)}`, { cause: error });
      if (watch.closed || watch.watcher !== watcher) return;
      watch.watcher = undefined;
      void watcher.cancel().catch(() => undefined);
      watch.recreateTimer = setTimeout(() => {
        watch.recreateTimer = undefined;
        if (watch.closed) return;
        this.#startWatcher(watch);
        refresh();
      }, watch.recreateMs);
      watch.recreateMs = Math.min(watch.recreateMs * 2, RECREATE_MS.max);
    });
  }

  #stop(watch: ServiceWatch): void {
    watch.closed = true;
    if (this.#watches.get(watch.serviceId) === watch) this.#watches.delete(watch.serviceId);
    if (watch.recreateTimer !== undefined) clearTimeout(watch.recreateTimer);
    void watch.watcher?.cancel().catch(() => undefined);
    watch.watcher = undefined;
    if (this.#watches.size === 0 && this.#rereadTimer !== undefined) {
      clearInterval(this.#rereadTimer);
      this.#rereadTimer = undefined;
    }
  }

  async #refresh(watch: ServiceWatch): Promise<void> {
    if (watch.reading) {
      watch.readAgain = true;
      return;
    }
    watch.reading = true;
    try {
      do {
        watch.readAgain = false;
        try {
          const entries = await this.#read(watch.serviceId);
          watch.last = entries;
          watch.lastError = undefined;
          if (watch.closed) return;
          for (const listener of [...watch.listeners]) listener(entries);
        } catch (error) {
          // Unreachable etcd: push nothing (running connections stay up); the next event or re-read tries again.
          watch.lastError = error instanceof RegistryError ? error : new RegistryError(errorSummary(error), { cause: error });
        }
      } while (watch.readAgain && !watch.closed);
    } finally {
      watch.reading = false;
    }
  }
}
