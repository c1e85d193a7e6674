import type { RegistryBackend, ServiceEntry } from "../registry/index.js";

/**
 * For a registry that cannot push changes (the file registry), one poll for every connect-mode
 * connection of this process: each tick looks
 * each watched service up once (a FileRegistry look at an unchanged file costs a stat) and tells
 * its watchers what it found. This replaces a socket monitor per connection, which cost two more
 * zeromq sockets and four more file descriptors each and capped a process at a few hundred
 * connections; one shared timer serves thousands.
 */

/** How often the registry is looked at while anything is watched (ms). */
export const SERVICE_WATCH_INTERVAL_MS = 250;

type Watcher = (entries: readonly ServiceEntry[]) => void;

const watched = new Map<RegistryBackend, Map<string, Set<Watcher>>>();
let timer: NodeJS.Timeout | undefined;
let ticking = false;

/**
 * Calls `watcher` with the service's live instances (none: gone): pushed by a backend that
 * watches (etcd), else on every tick of the shared poll. Returns the unwatch function.
 */
export function watchService(registry: RegistryBackend, serviceId: string, watcher: Watcher): () => void {
  if (registry.watch !== undefined) return registry.watch(serviceId, watcher);
  let services = watched.get(registry);
  if (services === undefined) watched.set(registry, (services = new Map()));
  let watchers = services.get(serviceId);
  if (watchers === undefined) services.set(serviceId, (watchers = new Set()));
  watchers.add(watcher);
  if (timer === undefined) {
    timer = setInterval(() => void tick(), SERVICE_WATCH_INTERVAL_MS);
    timer.unref();
  }
  return () => {
    watchers.delete(watcher);
    if (watchers.size === 0) services.delete(serviceId);
    if (services.size === 0) watched.delete(registry);
    if (watched.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

async function tick(): Promise<void> {
  if (ticking) return; // a slow registry: skip a beat rather than pile up
  ticking = true;
  try {
    for (const [registry, services] of watched) {
      for (const [serviceId, watchers] of services) {
        let entry: ServiceEntry | undefined;
        try {
          entry = await registry.lookup(serviceId);
        } catch {
          continue; // a registry error says nothing about the service: heartbeats judge
        }
        const entries = entry === undefined ? [] : [entry];
        for (const watcher of [...watchers]) watcher(entries);
      }
    }
  } finally {
    ticking = false;
  }
}
