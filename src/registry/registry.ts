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
}

/** What a registration may publish besides the port (extra fields v4 peers ignore). */
export interface RegistrationExtras {
  readonly publicKey?: string;
}

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
}

const MAX_SERVICE_ID_LENGTH = 256;
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

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

export function isPid(value: unknown): value is number {
  // Above 2^31-1 no OS has it, and process.kill() would refuse it.
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 0x7fffffff;
}
