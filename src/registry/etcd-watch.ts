import type { Etcd3, Watcher } from "etcd3";
import { errorSummary, RegistryError } from "../errors.js";
import type { InstancesListener, ServiceEntry } from "./registry.js";

interface ServiceWatch {
  readonly listeners: Set<InstancesListener>;
  readonly watcher: Watcher;
  /** The instances last read; undefined until the first read succeeded. */
  last: readonly ServiceEntry[] | undefined;
  lastError: RegistryError | undefined;
  reading: boolean;
  readAgain: boolean;
  closed: boolean;
}

/**
 * One etcd watch per watched service id, shared by every listener of this process. Each event (a
 * put, a delete, the watch (re)connecting after an outage) triggers one fresh read of the service's
 * instances, which is what listeners get: a whole list, never a diff to replay. Reads never overlap:
 * events during a read cause one more read after it.
 */
export class EtcdWatches {
  readonly #client: Etcd3;
  readonly #read: (serviceId: string) => Promise<ServiceEntry[]>;
  readonly #watches = new Map<string, ServiceWatch>();

  constructor(client: Etcd3, read: (serviceId: string) => Promise<ServiceEntry[]>) {
    this.#client = client;
    this.#read = read;
  }

  watch(serviceId: string, prefix: string, listener: InstancesListener): () => void {
    let watch = this.#watches.get(serviceId);
    if (watch === undefined) {
      const watcher = this.#client.watch().prefix(prefix).watcher();
      const created: ServiceWatch = { listeners: new Set(), watcher, last: undefined, lastError: undefined, reading: false, readAgain: false, closed: false };
      watch = created;
      this.#watches.set(serviceId, created);
      const refresh = (): void => void this.#refresh(serviceId, created);
      watcher.on("connected", refresh);
      watcher.on("put", refresh);
      watcher.on("delete", refresh);
      watcher.on("error", (error) => {
        created.lastError = new RegistryError(`etcd watch of '${serviceId}' failed: ${errorSummary(error)}`, { cause: error });
      });
      // etcd3 reconnects the watch by itself ("connected" again); nothing to do on "disconnected".
      watcher.on("disconnected", () => undefined);
      refresh();
    } else if (watch.last !== undefined) {
      const last = watch.last;
      queueMicrotask(() => {
        if (watch!.listeners.has(listener)) listener(last);
      });
    }
    watch.listeners.add(listener);
    const shared = watch;
    return () => {
      shared.listeners.delete(listener);
      if (shared.listeners.size > 0 || shared.closed) return;
      this.#stop(serviceId, shared);
    };
  }

  /** The last failure to read or watch `serviceId`, while it has not been read successfully since. */
  lastError(serviceId: string): RegistryError | undefined {
    return this.#watches.get(serviceId)?.lastError;
  }

  close(): void {
    for (const [serviceId, watch] of this.#watches) this.#stop(serviceId, watch);
  }

  #stop(serviceId: string, watch: ServiceWatch): void {
    watch.closed = true;
    if (this.#watches.get(serviceId) === watch) this.#watches.delete(serviceId);
    void watch.watcher.cancel().catch(() => undefined);
  }

  async #refresh(serviceId: string, watch: ServiceWatch): Promise<void> {
    if (watch.reading) {
      watch.readAgain = true;
      return;
    }
    watch.reading = true;
    try {
      do {
        watch.readAgain = false;
        try {
          const entries = await this.#read(serviceId);
          watch.last = entries;
          watch.lastError = undefined;
          if (watch.closed) return;
          for (const listener of [...watch.listeners]) listener(entries);
        } catch (error) {
          // Unreachable etcd: push nothing (running connections stay up); the watch's reconnection reads again.
          watch.lastError = error instanceof RegistryError ? error : new RegistryError(errorSummary(error), { cause: error });
        }
      } while (watch.readAgain && !watch.closed);
    } finally {
      watch.reading = false;
    }
  }
}
