import { InvalidArgumentError } from "../errors.js";
import type { LeaseEvents } from "./etcd-lease.js";

/** An etcd registry's options and their checks (no etcd client code: URLs are checked without loading it). */

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

/** The options with defaults applied and endpoints as URLs; InvalidArgumentError names a bad one. */
export function checkEtcdOptions(options: EtcdRegistryOptions): {
  endpoints: string[];
  prefix: string;
  leaseTtlSeconds: number;
  requestTimeoutMs: number;
} {
  if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) throw new InvalidArgumentError("an etcd registry needs at least one endpoint");
  const endpoints = options.endpoints.map(normalizeEndpoint);
  const prefix = options.prefix ?? ETCD_DEFAULTS.prefix;
  if (typeof prefix !== "string" || /[\u0000-\u001f]/.test(prefix)) throw new InvalidArgumentError(`prefix must be a string without control characters (got ${JSON.stringify(prefix)})`);
  const leaseTtlSeconds = options.leaseTtlSeconds ?? ETCD_DEFAULTS.leaseTtlSeconds;
  if (!Number.isInteger(leaseTtlSeconds) || leaseTtlSeconds < 2 || leaseTtlSeconds > 86_400) {
    throw new InvalidArgumentError(`leaseTtlSeconds must be an integer from 2 to 86400 (got ${String(options.leaseTtlSeconds)})`);
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
  if (!(requestTimeoutMs > 0) || !Number.isFinite(requestTimeoutMs)) {
    throw new InvalidArgumentError(`requestTimeoutMs must be a positive number of ms (got ${String(options.requestTimeoutMs)})`);
  }
  return { endpoints, prefix, leaseTtlSeconds, requestTimeoutMs };
}

function normalizeEndpoint(endpoint: unknown): string {
  if (typeof endpoint !== "string" || !/^(https?:\/\/)?[A-Za-z0-9._:[\]-]+:\d{1,5}$/.test(endpoint)) {
    throw new InvalidArgumentError(`an etcd endpoint must be host:port or http(s)://host:port (got ${JSON.stringify(endpoint)})`);
  }
  return /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`;
}
