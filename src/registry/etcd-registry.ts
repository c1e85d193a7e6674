import { Etcd3 } from "etcd3";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { errorSummary, InvalidArgumentError, RegistryError, ServiceNotFoundError } from "../errors.js";
import { LeasedKey, type LeaseEvents } from "./etcd-lease.js";
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

export interface EtcdRegistryOptions {
  /** etcd client endpoints: `host:port` or `http://host:port`. */
  readonly endpoints: readonly string[];
  /** Every key this registry writes or reads starts with it. Default `"multifrost/"`. */
  readonly prefix?: string;
  /**
   * A registration's lease time to live, in seconds: how long a crashed service (or a host cut
   * off from etcd) stays discoverable. Kept alive every third of it while the service runs. Default 10.
   */
  readonly leaseTtlSeconds?: number;
  /** The longest wait for one etcd request before it fails with RegistryError. Default 3000 ms. */
  readonly requestTimeoutMs?: number;
  /** Lease losses and renewals of this process's registrations. Default: one line each on stderr. */
  readonly events?: LeaseEvents;
  /** TLS to etcd (endpoints then start with https://): PEM buffers, as etcd3 takes them. */
  readonly credentials?: { readonly rootCertificate: Buffer; readonly privateKey?: Buffer; readonly certChain?: Buffer };
  /** etcd's password authentication (role-based access: who may register under the prefix). */
  readonly auth?: { readonly username: string; readonly password: string };
}

export const ETCD_DEFAULTS = { prefix: "multifrost/", leaseTtlSeconds: 10, requestTimeoutMs: 3000 } as const;

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
    const endpoints = options.endpoints.map(normalizeEndpoint);
    if (endpoints.length === 0) throw new InvalidArgumentError("an etcd registry needs at least one endpoint");
    this.#prefix = options.prefix ?? ETCD_DEFAULTS.prefix;
    this.#ttlSeconds = options.leaseTtlSeconds ?? ETCD_DEFAULTS.leaseTtlSeconds;
    if (!Number.isInteger(this.#ttlSeconds) || this.#ttlSeconds < 2) {
      throw new InvalidArgumentError(`leaseTtlSeconds must be an integer >= 2 (got ${String(options.leaseTtlSeconds)})`);
    }
    this.#requestTimeoutMs = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
    if (!(this.#requestTimeoutMs > 0) || !Number.isFinite(this.#requestTimeoutMs)) {
      throw new InvalidArgumentError(`requestTimeoutMs must be a positive number of ms (got ${String(options.requestTimeoutMs)})`);
    }
    this.#events = options.events ?? STDERR_LEASE_EVENTS;
    this.location = `etcd://${endpoints.map((e) => e.replace(/^https?:\/\//, "")).join(",")}/${this.#prefix}`;
    const timeout = this.#requestTimeoutMs;
    this.#client = new Etcd3({
      hosts: endpoints,
      dialTimeout: timeout,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
      faultHandling: { watchBackoff: retryBackoff(WATCH_RETRY_MS.first) },
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
    const found = await this.#request("read", () => this.#client.getAll().prefix(prefix).strings());
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
    let lastError: unknown;
    try {
      const now = pickOne(await this.instances(serviceId));
      if (now !== undefined) return now;
    } catch (error) {
      lastError = error;
    }
    if (timeoutMs === 0) throw lastError ?? new ServiceNotFoundError(serviceId, timeoutMs);
    // Wait for the watch to push an instance; it re-reads after every change and every reconnection.
    return new Promise<ServiceEntry>((resolve, reject) => {
      let unwatch: (() => void) | undefined;
      const timer = setTimeout(() => {
        unwatch?.();
        const error = this.#watches.lastError(serviceId) ?? lastError;
        reject(error instanceof RegistryError ? error : new ServiceNotFoundError(serviceId, timeoutMs));
      }, timeoutMs);
      unwatch = this.watch(serviceId, (entries) => {
        const entry = pickOne(entries);
        if (entry === undefined) return;
        clearTimeout(timer);
        queueMicrotask(() => unwatch?.());
        resolve(entry);
      });
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
    const found = await this.#request("read", () => this.#client.getAll().prefix(prefix).strings());
    const result: { serviceId: string; entry: ServiceEntry }[] = [];
    for (const [key, value] of Object.entries(found)) {
      const rest = key.slice(prefix.length);
      const slash = rest.lastIndexOf("/");
      if (slash <= 0) continue;
      const entry = toEtcdEntry(rest.slice(slash + 1), value);
      if (entry !== undefined) result.push({ serviceId: decodeURIComponent(rest.slice(0, slash)), entry });
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

function isLoopback(host: string | undefined): boolean {
  return host !== undefined && /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/.test(host);
}

function pickOne(entries: readonly ServiceEntry[]): ServiceEntry | undefined {
  return entries.length === 0 ? undefined : entries[Math.floor(Math.random() * entries.length)];
}

function normalizeEndpoint(endpoint: string): string {
  if (typeof endpoint !== "string" || !/^(https?:\/\/)?[A-Za-z0-9._:[\]-]+:\d{1,5}$/.test(endpoint)) {
    throw new InvalidArgumentError(`an etcd endpoint must be host:port or http://host:port (got ${JSON.stringify(endpoint)})`);
  }
  return /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`;
}

/** cockatiel's backoff shape (what etcd3 takes), doubling from `first` to WATCH_RETRY_MS.max. */
interface RetryBackoff {
  readonly duration: number;
  next(context: unknown): RetryBackoff;
}

function retryBackoff(duration: number): RetryBackoff {
  return { duration, next: () => retryBackoff(Math.min(duration * 2, WATCH_RETRY_MS.max)) };
}
