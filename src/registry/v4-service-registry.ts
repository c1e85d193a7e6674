import { createServer } from "node:net";
import { RegistryError, ServiceAlreadyRunningError } from "../errors.js";
import { FileRegistry } from "./file-registry.js";
import { openRegistry } from "./open-registry.js";

/** v4's default `discover()` timeout. */
const DEFAULT_DISCOVER_TIMEOUT_MS = 5000;

/**
 * v4's `ServiceRegistry`: static `register`, `discover`, `unregister` and `findFreePort` over
 * the shared `services.json`. Kept so v4 code that uses it directly compiles and runs unchanged;
 * new code should use a {@link FileRegistry} (or any `RegistryBackend`) instead.
 *
 * Every call works on the default registry as set at the time of the call: `$MULTIFROST_REGISTRY`
 * (an etcd URL works too), else a `FileRegistry` in `$MULTIFROST_REGISTRY_DIR`, else `~/.multifrost`. It therefore inherits FileRegistry's fixes
 * to v4: concurrent updates wait for the locks instead of failing with "Lock file is already being
 * held"; the JS v4 and the Python v4 locks are both taken; the file is replaced atomically; a
 * corrupt file is set aside. Errors are typed: `ServiceAlreadyRunningError`, `ServiceNotFoundError`,
 * `InvalidArgumentError` (empty id, control characters, bad timeout; v4 accepted an empty id),
 * `RegistryError` (lock or I/O failure).
 */
export class ServiceRegistry {
  /**
   * v4's contract: picks a free port and records `serviceId → port` owned by this process, and
   * resolves with the port, which the caller is then expected to bind.
   *
   * Rejects with `ServiceAlreadyRunningError` when a live process, this one included, already holds
   * the id (as v4 does: a second `register` would otherwise silently move the service to a new
   * port); an entry whose process is dead is replaced. Calls in this process are serialised, so
   * concurrent `register(id)` calls for one id give exactly one port.
   *
   * The race v4 has remains inherent to this contract: the port is free when chosen, but another
   * process may bind it before the caller does (then the caller's bind fails; `unregister` the id).
   * `ChildWorker` does not use this method: it binds port 0 first and registers the port it really
   * holds, which is the race-free path. Prefer it, or do the same with `FileRegistry.register(id, port)`.
   */
  static register(serviceId: string): Promise<number> {
    return serialised(async () => {
      const registry = openRegistry();
      // One live owner per id in the file registry (v4's contract); etcd keeps several instances of an id by design.
      const existing = registry instanceof FileRegistry ? await registry.lookup(serviceId) : undefined;
      if (existing) throw new ServiceAlreadyRunningError(serviceId, existing.pid, existing.port);
      const port = await ServiceRegistry.findFreePort();
      // FileRegistry re-checks other processes' live entries under the registry locks.
      return (await registry.register(serviceId, port)).port;
    });
  }

  /**
   * Waits until a live process has registered `serviceId` (polling about every 100 ms) and
   * resolves with its port. Rejects with `ServiceNotFoundError`
   * (`Service '<id>' not found within <t>ms`, as v4's message) after `timeoutMs`; 0 looks once.
   */
  static async discover(serviceId: string, timeoutMs: number = DEFAULT_DISCOVER_TIMEOUT_MS): Promise<number> {
    return (await openRegistry().discover(serviceId, timeoutMs)).port;
  }

  /** Removes the entry if this process owns it (as v4); another process's entry is left alone. */
  static async unregister(serviceId: string): Promise<void> {
    await openRegistry().unregister(serviceId);
  }

  /**
   * A TCP port that was free on all interfaces a moment ago (the OS picks it). Another process may
   * take it before you bind it; binding port 0 yourself is the race-free alternative.
   */
  static findFreePort(): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once("error", (error) => reject(new RegistryError(`cannot find a free port: ${error.message}`, { cause: error })));
      server.listen(0, () => {
        const address = server.address();
        const port = typeof address === "object" && address !== null ? address.port : undefined;
        server.close(() => {
          if (port === undefined) reject(new RegistryError("cannot find a free port: the OS reported no port"));
          else resolve(port);
        });
      });
    });
  }
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs `task` after every earlier `register` of this process has settled. */
function serialised<T>(task: () => Promise<T>): Promise<T> {
  const run = queue.then(task);
  queue = run.catch(() => undefined);
  return run;
}
