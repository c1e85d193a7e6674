import { circuitBreaker, ConsecutiveBreaker, handleWhen, noop, retry } from "cockatiel";
import { Etcd3, isRecoverableError } from "etcd3";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { errorSummary, InvalidArgumentError, RegistryError, ServiceNotFoundError } from "../errors.js";
import { LeasedKey, type LeaseEvents } from "./etcd-lease.js";
import { checkEtcdOptions, type EtcdRegistryOptions } from "./etcd-options.js";
import { EtcdWatches } from "./etcd-watch.js";
import {
  assertAdvertisedHost,
  assertPid,
  assertPort,
  assertServiceId,
  isAdvertisedHost,
  isPid,
  isPort,
  type InstancesListener,
  type RegistrationExtras,
  type RegistryBackend,
  type ServiceEntry,
} from "./registry.js";

export type { EtcdRegistryOptions } from "./etcd-options.js";

/**
 * What one read may bring back, whoever wrote under the prefix: at most this many instances of a
 * service (more would be a flood, not a deployment), registrations listed, and characters per entry.
 */
const MAX_INSTANCES_READ = 1000;
const MAX_REGISTRATIONS_LISTED = 10_000;
const MAX_ENTRY_CHARS = 4096;

/** A registration that silently vanished from discovery would be a mystery: say so. */
const STDERR_LEASE_EVENTS: LeaseEvents = {
  lost: (key, reason) => process.stderr.write(`multifrost: the etcd lease of ${key} was lost (${reason}); registering again when etcd answers\n`),
  renewed: (key) => process.stderr.write(`multifrost: ${key} is registered in etcd again\n`),
};

/** Watch streams come back this fast after an etcd outage (etcd3's default waits up to 30 s). */
const WATCH_RETRY_MS = { first: 200, max: 2000 };

/**
 * Service discovery on etcd: each registration is one key `<prefix>services/<id>/<instance>`
 * holding `{host, port, pid, started, hostname, publicKey?}` under its own lease, so several
 * instances of one id (on any hosts) coexist and a crashed one disappears when its lease expires.
 * Discovery and connection loss use watches, not polls. Every etcd failure is a `RegistryError`.
 */
export class EtcdRegistry implements RegistryBackend {
  readonly location: string;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #ttlSeconds: number;
  readonly #requestTimeoutMs: number;
  readonly #events: LeaseEvents;
  readonly #registrations = new Map<string, { entry: ServiceEntry; key: LeasedKey }[]>();
  readonly #watches: EtcdWatches;

  constructor(options: EtcdRegistryOptions) {
    const checked = checkEtcdOptions(options);
    const endpoints = checked.endpoints;
    this.#prefix = checked.prefix;
    this.#ttlSeconds = checked.leaseTtlSeconds;
    this.#requestTimeoutMs = checked.requestTimeoutMs;
    this.#events = options.events ?? STDERR_LEASE_EVENTS;
    this.location = `etcd://${endpoints.map((e) => e.replace(/^https?:\/\//, "")).join(",")}/${this.#prefix}`;
    // One request tries each endpoint at most once, all within requestTimeoutMs: with one
    // endpoint no retry (etcd3's default retries 3 times, tripling the bound) and no breaker
    // (which would keep failing for 5 s after etcd returns); with several, a failing endpoint is
    // skipped for a second and the request moves on to the next.
    const attempts = endpoints.length;
    const perAttemptMs = Math.max(1, Math.floor(this.#requestTimeoutMs / attempts));
    this.#client = new Etcd3({
      hosts: endpoints,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + perAttemptMs }),
      // A stalled endpoint (SIGSTOPped, partitioned) would otherwise hold a watch or lease stream silently.
      grpcOptions: { "grpc.keepalive_time_ms": 3000, "grpc.keepalive_timeout_ms": 2000, "grpc.keepalive_permit_without_calls": 1 },
      faultHandling: {
        global: attempts > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: attempts - 1 }) : noop,
        host: () => (attempts > 1 ? circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(2) }) : noop),
        watchBackoff: retryBackoff(WATCH_RETRY_MS.first),
      },
      ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
      ...(options.auth === undefined ? {} : { auth: { ...options.auth } }),
    });
    this.#watches = new EtcdWatches(this.#client, (serviceId) => this.instances(serviceId));
  }

  async register(serviceId: string, port: number, pid: number = process.pid, extras: RegistrationExtras = {}): Promise<ServiceEntry> {
    assertServiceId(serviceId);
    assertPort(port);
    assertPid(pid);
    if (extras.host !== undefined) assertAdvertisedHost(extras.host, "host");
    const instance = randomBytes(8).toString("hex");
    const entry: ServiceEntry = {
      host: extras.host ?? "127.0.0.1",
      port,
      pid,
      started: new Date().toISOString(),
      hostname: hostname(),
      ...(extras.publicKey === undefined ? {} : { publicKey: extras.publicKey }),
    };
    const key = new LeasedKey(this.#client, this.#keyOf(serviceId, instance), JSON.stringify(entry), this.#ttlSeconds, this.#requestTimeoutMs, this.#events);
    await key.start();
    const list = this.#registrations.get(serviceId) ?? [];
    list.push({ entry, key });
    this.#registrations.set(serviceId, list);
    return { ...entry, instance };
  }

  async unregister(serviceId: string, pid: number = process.pid): Promise<boolean> {
    assertServiceId(serviceId);
    assertPid(pid);
    const list = this.#registrations.get(serviceId) ?? [];
    const mine = list.filter((registration) => registration.entry.pid === pid);
    if (mine.length === 0) return false;
    this.#registrations.set(
      serviceId,
      list.filter((registration) => !mine.includes(registration)),
    );
    if (this.#registrations.get(serviceId)?.length === 0) this.#registrations.delete(serviceId);
    await Promise.all(mine.map((registration) => registration.key.stop()));
    return true;
  }

  /**
   * The instances this process can reach: all but those bound to another machine's loopback (a
   * service left on 127.0.0.1 registers that address; only parents on its own machine can use it).
   * `listInstances()` shows them all.
   */
  async instances(serviceId: string): Promise<ServiceEntry[]> {
    assertServiceId(serviceId);
    const prefix = this.#servicePrefix(serviceId);
    const found = await this.#request("read", () => this.#client.getAll().prefix(prefix).limit(MAX_INSTANCES_READ).strings());
    const here = hostname();
    return Object.entries(found)
      .map(([key, value]) => toEtcdEntry(key.slice(prefix.length), value))
      .filter((entry): entry is ServiceEntry => entry !== undefined && (!isLoopback(entry.host) || entry.hostname === undefined || entry.hostname === here))
      .sort((a, b) => a.started.localeCompare(b.started));
  }

  async lookup(serviceId: string): Promise<ServiceEntry | undefined> {
    return pickOne(await this.instances(serviceId));
  }

  async discover(serviceId: string, timeoutMs: number): Promise<ServiceEntry> {
    assertServiceId(serviceId);
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      throw new InvalidArgumentError(`timeoutMs must be a number >= 0 (got ${String(timeoutMs)})`);
    }
    // Everything, the first read included, within timeoutMs (Infinity: until found).
    const deadline = Date.now() + timeoutMs;
    return new Promise<ServiceEntry>((resolve, reject) => {
      let settled = false;
      let unwatch: (() => void) | undefined;
      let readOnce = false;
      let lastError: RegistryError | undefined;
      const finish = (entry: ServiceEntry | undefined, error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        queueMicrotask(() => unwatch?.());
        if (entry !== undefined) resolve(entry);
        else reject(error);
      };
      const giveUp = (): void =>
        // etcd never answered: say so (a hung etcd fails no request before our deadline does);
        // it answered at least once: the service is not there.
        finish(
          undefined,
          readOnce
            ? new ServiceNotFoundError(serviceId, timeoutMs)
            : (lastError ?? new RegistryError(`etcd did not answer within ${timeoutMs}ms (${this.location})`)),
        );
      // 0: one look (the read's answer decides); Infinity: until found.
      const timer = timeoutMs > 0 && Number.isFinite(timeoutMs) ? setTimeout(giveUp, Math.min(Math.max(0, deadline - Date.now()), 0x7fffffff)) : undefined;
      this.instances(serviceId).then(
        (entries) => {
          readOnce = true;
          const entry = pickOne(entries);
          if (entry !== undefined) finish(entry);
          else if (timeoutMs === 0) giveUp();
        },
        (error: unknown) => {
          lastError = error instanceof RegistryError ? error : new RegistryError(errorSummary(error), { cause: error });
          if (timeoutMs === 0) giveUp();
        },
      );
      if (timeoutMs === 0) return;
      // The watch re-reads after every change and every reconnection.
      unwatch = this.#watches.watch(serviceId, this.#servicePrefix(serviceId), (entries) => {
        readOnce = true;
        const entry = pickOne(entries);
        if (entry !== undefined) finish(entry);
      });
      if (settled) queueMicrotask(() => unwatch?.());
    });
  }

  async list(): Promise<Record<string, ServiceEntry>> {
    const live = Object.create(null) as Record<string, ServiceEntry>;
    for (const { serviceId, entry } of await this.listInstances()) live[serviceId] ??= entry;
    return live;
  }

  /** Every live registration, several per id where several instances run. */
  async listInstances(): Promise<{ serviceId: string; entry: ServiceEntry }[]> {
    const prefix = `${this.#prefix}services/`;
    const found = await this.#request("read", () => this.#client.getAll().prefix(prefix).limit(MAX_REGISTRATIONS_LISTED).strings());
    const result: { serviceId: string; entry: ServiceEntry }[] = [];
    for (const [key, value] of Object.entries(found)) {
      const rest = key.slice(prefix.length);
      const slash = rest.lastIndexOf("/");
      if (slash <= 0) continue;
      const entry = toEtcdEntry(rest.slice(slash + 1), value);
      const serviceId = decodeServiceId(rest.slice(0, slash));
      if (entry !== undefined && serviceId !== undefined) result.push({ serviceId, entry });
    }
    return result.sort((a, b) => a.serviceId.localeCompare(b.serviceId) || a.entry.started.localeCompare(b.entry.started));
  }

  watch(serviceId: string, listener: InstancesListener): () => void {
    assertServiceId(serviceId);
    return this.#watches.watch(serviceId, this.#servicePrefix(serviceId), listener);
  }

  /** Revokes this process's registrations and closes the etcd client. */
  async close(): Promise<void> {
    const all = [...this.#registrations.values()].flat();
    this.#registrations.clear();
    await Promise.all(all.map((registration) => registration.key.stop()));
    this.#watches.close();
    this.#client.close();
  }

  #servicePrefix(serviceId: string): string {
    return `${this.#prefix}services/${encodeURIComponent(serviceId)}/`;
  }

  #keyOf(serviceId: string, instance: string): string {
    return this.#servicePrefix(serviceId) + instance;
  }

  async #request<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new RegistryError(`etcd ${what} failed (${this.location}): ${errorSummary(error)}`, { cause: error });
    }
  }
}

/** A registered instance as read back; undefined for a value that is not one of ours. */
export function toEtcdEntry(instance: string, value: string): ServiceEntry | undefined {
  if (value.length > MAX_ENTRY_CHARS) return undefined; // ours are ~200 bytes: not an entry
  let stored: unknown;
  try {
    stored = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof stored !== "object" || stored === null) return undefined;
  const { host, port, pid, started, hostname: machine, publicKey } = stored as Record<string, unknown>;
  if (!isPort(port) || !isPid(pid) || !isAdvertisedHost(host)) return undefined;
  return {
    host,
    port,
    pid,
    started: typeof started === "string" ? started : "",
    instance,
    ...(typeof machine === "string" ? { hostname: machine } : {}),
    ...(typeof publicKey === "string" && publicKey.length === 40 ? { publicKey } : {}),
  };
}

/** A key's id part, or undefined for one that is not ours (another writer's key under the prefix). */
function decodeServiceId(encoded: string): string | undefined {
  try {
    const id = decodeURIComponent(encoded);
    assertServiceId(id);
    return id;
  } catch {
    return undefined;
  }
}

function isLoopback(host: string | undefined): boolean {
  return host !== undefined && /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/.test(host);
}

function pickOne(entries: readonly ServiceEntry[]): ServiceEntry | undefined {
  return entries.length === 0 ? undefined : entries[Math.floor(Math.random() * entries.length)];
}

/** cockatiel's backoff shape (what etcd3 takes), doubling from `first` to WATCH_RETRY_MS.max. */
interface RetryBackoff {
  readonly duration: number;
  next(context: unknown): RetryBackoff;
}

function retryBackoff(duration: number): RetryBackoff {
  return { duration, next: () => retryBackoff(Math.min(duration * 2, WATCH_RETRY_MS.max)) };
}
