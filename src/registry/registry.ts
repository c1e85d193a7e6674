import { InvalidArgumentError } from "../errors.js";

/**
 * Service discovery for connect mode: a service registers the port it bound under a service id,
 * a parent discovers the port by id. The file backend is the v4-compatible one; other backends
 * (etcd, ...) implement the same interface.
 */

/** One registered service, as stored in v4's `services.json`. */
export interface ServiceEntry {
  /** The TCP port the service's ROUTER is bound to. */
  readonly port: number;
  /** The process that registered (and owns) the entry. */
  readonly pid: number;
  /** ISO 8601 registration time: UTC with `Z` from JS writers, local time without zone from Python v4. */
  readonly started: string;
  /**
   * The owner's start time: field 22 of `/proc/<pid>/stat`, in clock ticks since boot. Written by
   * this library (TS and Python) where `/proc` exists; absent in entries written by v4 peers.
   * An entry whose pid now has another start time belongs to a dead owner (the pid was reused).
   */
  readonly pidStart?: number;
  /** A CURVE service's public key (Z85): clients encrypt to it and authenticate it. v4 peers ignore it. */
  readonly publicKey?: string;
  /**
   * The address parents connect to (the service's `advertise`). Absent: the service is on this
   * machine's loopback (v4 entries, and every service bound to 127.0.0.1).
   */
  readonly host?: string;
  /** Names this registration where one id may have several instances (etcd: the key's last part). */
  readonly instance?: string;
  /** The machine the service runs on (etcd entries: `os.hostname()`), for people reading the registry. */
  readonly hostname?: string;
}

/** What a registration may publish besides the port (extra fields v4 peers ignore). */
export interface RegistrationExtras {
  readonly publicKey?: string;
  /** The address to advertise when it is not this machine's loopback. */
  readonly host?: string;
}

/** Called with every live instance of a service: at once, then after each change. */
export type InstancesListener = (entries: readonly ServiceEntry[]) => void;

export interface RegistryBackend {
  /**
   * Records `serviceId → port` owned by `pid` (default: this process). Replaces an entry whose
   * owner is dead or is `pid` itself; rejects with `ServiceAlreadyRunningError` if another live
   * process owns it.
   */
  register(serviceId: string, port: number, pid?: number, extras?: RegistrationExtras): Promise<ServiceEntry>;
  /**
   * Waits until a live entry exists, polling about every 100 ms; rejects with
   * `ServiceNotFoundError` after `timeoutMs` (0 = look once).
   */
  discover(serviceId: string, timeoutMs: number): Promise<ServiceEntry>;
  /** One look: the live entry, or undefined. */
  lookup(serviceId: string): Promise<ServiceEntry | undefined>;
  /** Removes the entry only if `pid` (default: this process) owns it; resolves to whether it did. */
  unregister(serviceId: string, pid?: number): Promise<boolean>;
  /** Every live entry, by service id. */
  list(): Promise<Record<string, ServiceEntry>>;
  /**
   * Every live instance of `serviceId` (a backend where one id may have several, as etcd).
   * Without it, the instances are `lookup`'s entry, if any.
   */
  instances?(serviceId: string): Promise<ServiceEntry[]>;
  /**
   * Pushes the live instances of `serviceId` to `listener` now and after each change; returns the
   * function that stops it. A push-based backend (etcd's watch) implements it; others are polled.
   * A registry that cannot be reached pushes nothing (running connections are judged by heartbeats).
   */
  watch?(serviceId: string, listener: InstancesListener): () => void;
  /** Every live registration, several per id where several instances run (for the CLI). */
  listInstances?(): Promise<{ serviceId: string; entry: ServiceEntry }[]>;
  /** Where the entries live, for messages and the CLI (a file path, etcd endpoints). */
  readonly location?: string;
  /** Releases what the backend holds (etcd: revokes this process's registrations, closes the client). */
  close?(): Promise<void>;
}

/** Every live instance of a service, on any backend. */
export async function instancesOf(registry: RegistryBackend, serviceId: string): Promise<ServiceEntry[]> {
  if (registry.instances !== undefined) return registry.instances(serviceId);
  const entry = await registry.lookup(serviceId);
  return entry === undefined ? [] : [entry];
}

/** Names one registered instance: its registration's `instance`, else its address, port and pid. */
export function instanceKey(entry: ServiceEntry): string {
  return entry.instance ?? `${entry.host ?? "local"}:${entry.port}:${entry.pid}`;
}

/** Whether two entries name the same running instance (same address, port and registration). */
export function sameInstance(a: ServiceEntry, b: ServiceEntry): boolean {
  return a.port === b.port && (a.host ?? "") === (b.host ?? "") && a.instance === b.instance && a.pid === b.pid;
}

/** The ZeroMQ endpoint of an entry: its advertised host, else `localHost` (the parent's host setting). */
export function entryEndpoint(entry: ServiceEntry, localHost: string): string {
  const host = entry.host ?? localHost;
  return `tcp://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${entry.port}`;
}

const MAX_SERVICE_ID_LENGTH = 256;
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function assertServiceId(serviceId: unknown): asserts serviceId is string {
  if (typeof serviceId !== "string" || serviceId.length === 0) {
    throw new InvalidArgumentError("serviceId must be a non-empty string");
  }
  if (serviceId.length > MAX_SERVICE_ID_LENGTH) {
    throw new InvalidArgumentError(`serviceId must be at most ${MAX_SERVICE_ID_LENGTH} characters (got ${serviceId.length})`);
  }
  if (CONTROL_CHARACTER.test(serviceId)) {
    throw new InvalidArgumentError(`serviceId must not contain control characters: ${JSON.stringify(serviceId)}`);
  }
  if (LONE_SURROGATE.test(serviceId)) {
    throw new InvalidArgumentError(`serviceId must be well-formed Unicode (a lone surrogate cannot be stored): ${JSON.stringify(serviceId)}`);
  }
}

export function assertPort(port: unknown): asserts port is number {
  if (!isPort(port)) throw new InvalidArgumentError(`port must be an integer in 1..65535 (got ${String(port)})`);
}

export function assertPid(pid: unknown): asserts pid is number {
  if (!isPid(pid)) throw new InvalidArgumentError(`pid must be a positive integer (got ${String(pid)})`);
}

export function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/** A start time in clock ticks since boot. */
export function isPidStart(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A host name or IP address a parent could connect to (no scheme, port or spaces). */
export function isAdvertisedHost(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 253 && /^[A-Za-z0-9._:%[\]-]+$/.test(value);
}

export function assertAdvertisedHost(value: unknown, name = "advertise"): asserts value is string {
  if (!isAdvertisedHost(value)) throw new InvalidArgumentError(`${name} must be a host name or an IP address (got ${JSON.stringify(value)})`);
}

export function isPid(value: unknown): value is number {
  // Above 2^31-1 no OS has it, and process.kill() would refuse it.
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 0x7fffffff;
}
