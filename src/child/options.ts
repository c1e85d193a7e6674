import { networkInterfaces } from "node:os";
import { DISPATCHER_DEFAULTS } from "../actors/dispatcher.js";
import { resolveServiceCurve, type ServiceCurveOptions } from "../actors/curve.js";
import { InvalidArgumentError } from "../errors.js";
import type { Logger, LogLevelOption } from "../observability/logger.js";
import type { RegistryBackend, RegistrySetting } from "../registry/index.js";
import { assertAdvertisedHost } from "../registry/registry.js";

/** A ChildWorker's options, their defaults and their checks. */

export interface ChildWorkerOptions {
  /** Connect mode: the service id to register; the worker binds and parents connect to it. */
  serviceId?: string;
  /**
   * Connect mode: where to register — a backend, or a URL (`file:///dir`, `etcd://host:port[,…]`).
   * Default: `$MULTIFROST_REGISTRY`, else a FileRegistry (`$MULTIFROST_REGISTRY_DIR` or ~/.multifrost).
   */
  registry?: RegistrySetting;
  /** Connect mode: shorthand for `registry: new FileRegistry({ dir })`. */
  registryDir?: string;
  /** Connect mode: the interface to bind. Default 127.0.0.1; anything else needs `curve` or `insecure: true`. */
  host?: string;
  /**
   * Connect mode: the address parents on other machines reach this service at, published in its
   * registry entry. Default: `host`, or for a wildcard `host` ("0.0.0.0", "::") this machine's
   * first non-internal IPv4 address (none: the entry names no address, and parents on this machine
   * connect over loopback).
   */
  advertise?: string;
  /**
   * Connect mode: serve over CURVE — the service's key pair and, optionally, the client public keys
   * it admits (any CURVE client otherwise) — or the name of a key pair in the keys directory
   * (`$MULTIFROST_KEYS_DIR` or ~/.multifrost/keys; its `authorized_keys` lists admitted clients).
   * The public key is published in the registry entry (`publicKey`).
   */
  curve?: ServiceCurveOptions | string;
  /** Connect mode: allow a non-loopback `host` without CURVE. Default false. */
  insecure?: boolean;
  /** Calls that run at once; async handlers overlap up to this bound. Default 64. */
  concurrency?: number;
  /** How long `stop()` lets running calls finish before closing. Default 5000 ms. */
  shutdownGraceMs?: number;
  /**
   * After a `shutdown` message, SIGTERM, SIGINT or the parent's death, exit the process if it
   * has not exited by itself this long after `run()` resolved. Default 1000 ms; `false` never exits.
   */
  exitAfterStopMs?: number | false;
  /**
   * Spawn mode: stop (as when the parent dies) once the connection to the parent has been down
   * this long, and exit after `exitAfterStopMs`. It catches a parent that died behind a wrapper
   * (`/bin/sh -c`, npx), which leaves our ppid unchanged. Counted only after a first connection;
   * a reconnection within the grace cancels it. `false`: watch the ppid only.
   * @default 2000
   */
  orphanGraceMs?: number | false;
  /** Process-wide SIGTERM/SIGINT handling by `run()`. Default true. */
  handleSignals?: boolean;
  /**
   * Send what this process prints (`console.*`, `process.stdout/stderr.write`) to the connected
   * parents as stdout/stderr messages, one per line. Default true.
   */
  forwardOutput?: boolean;
  /**
   * Obey a `shutdown` message. A refused one is counted (`rejected["shutdown-refused"]`) and
   * logged once on this process's stderr.
   * @default true when spawned (COMLINK_ZMQ_PORT set), false for a connect-mode service
   */
  acceptShutdown?: boolean;
  /**
   * Calls that may wait for a slot beyond the `concurrency` running ones; a call beyond it gets
   * an `error` reply `"BusyError: …"` at once.
   * @default 10_000
   */
  maxQueuedCalls?: number;
  /**
   * Arguments a call may pass; more get an `error` reply `"InvalidArgumentError: …"` (a handler
   * receives its arguments on the stack, which holds about 120,000).
   * @default 65_536
   */
  maxArgs?: number;
  /**
   * Forwarded output waiting in the send queue beyond this many bytes (parents not reading fast
   * enough) is dropped until the queue has drained, then one line says how many lines were lost.
   * @default 8 MiB
   */
  maxOutputBacklogBytes?: number;
  /**
   * Bytes this process's own stdout/stderr may hold unwritten (a pipe nobody reads) before
   * printed lines are dropped, counted and reported by one line once it drains.
   * @default 1 MiB
   */
  maxPendingOutputBytes?: number;
  /**
   * Lifecycle events (started, stopped, refused shutdowns, busy refusals, registry errors) go to
   * this pino-compatible logger as `(fields, msg)`; calls are never logged.
   * @default undefined (nothing is logged)
   */
  logger?: Logger;
  /**
   * The lowest level passed to `logger`.
   * @default $MULTIFROST_LOG_LEVEL, else "info"
   */
  logLevel?: LogLevelOption;
}

/** The options a ChildWorker runs with, defaults applied and checked. */
export type ResolvedChildOptions = Required<
  Pick<
    ChildWorkerOptions,
    | "concurrency"
    | "shutdownGraceMs"
    | "exitAfterStopMs"
    | "orphanGraceMs"
    | "handleSignals"
    | "forwardOutput"
    | "maxQueuedCalls"
    | "maxArgs"
    | "maxOutputBacklogBytes"
    | "maxPendingOutputBytes"
  >
> & { acceptShutdown: boolean | undefined };

/** Connect mode: the name to register, where, and the interface to bind. */
export interface ConnectSettings {
  serviceId: string;
  /** The registry given, or undefined for a FileRegistry in `registryDir`, loaded only then (a spawned worker never loads registry code). */
  registry: RegistrySetting | undefined;
  registryDir: string | undefined;
  host: string;
  /** The address to publish; undefined for a loopback service (parents use their own loopback). */
  advertise: string | undefined;
  curve: ServiceCurveOptions | undefined;
}

/** Applies the defaults and checks the values; throws InvalidArgumentError on a bad one. */
export function resolveChildOptions(options: ChildWorkerOptions): ResolvedChildOptions {
  return {
    concurrency: options.concurrency ?? 64,
    shutdownGraceMs: options.shutdownGraceMs ?? 5000,
    exitAfterStopMs: options.exitAfterStopMs ?? 1000,
    orphanGraceMs: checkOrphanGrace(options.orphanGraceMs ?? 2000),
    handleSignals: options.handleSignals ?? true,
    forwardOutput: options.forwardOutput ?? true,
    acceptShutdown: options.acceptShutdown,
    maxQueuedCalls: checkCount(options.maxQueuedCalls ?? DISPATCHER_DEFAULTS.maxQueued, "maxQueuedCalls", 0),
    maxArgs: checkCount(options.maxArgs ?? DISPATCHER_DEFAULTS.maxArgs, "maxArgs", 0),
    maxOutputBacklogBytes: checkCount(options.maxOutputBacklogBytes ?? 8 * 1024 * 1024, "maxOutputBacklogBytes", 0),
    maxPendingOutputBytes: checkCount(options.maxPendingOutputBytes ?? 1024 * 1024, "maxPendingOutputBytes", 0),
  };
}

/** Connect mode's settings, or undefined without a serviceId (a spawn-only worker). */
export function resolveConnectSettings(options: ChildWorkerOptions): ConnectSettings | undefined {
  return options.serviceId === undefined
    ? undefined
    : {
        serviceId: options.serviceId,
        registry: options.registry,
        registryDir: options.registryDir,
        host: options.host ?? "127.0.0.1",
        advertise: advertisedAddress(options.host ?? "127.0.0.1", options.advertise),
        curve: resolveServiceCurve(options.curve, options.host ?? "127.0.0.1", options.insecure ?? false),
      };
}

function checkCount(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function checkOrphanGrace(value: number | false): number | false {
  if (value !== false && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
    throw new InvalidArgumentError(`orphanGraceMs must be a non-negative number of milliseconds or false, got ${String(value)}`);
  }
  return value;
}

/** Connect mode's registry: the one given, else the default one (registry code is imported only now). */
export async function connectRegistry(connect: ConnectSettings): Promise<RegistryBackend> {
  const given = connect.registry;
  if (typeof given === "object" && "register" in given) return given;
  const { openRegistry } = await import("../registry/index.js");
  return openRegistry(connect.registry, connect.registryDir);
}

const WILDCARD = new Set(["0.0.0.0", "*", "::", "[::]"]);

/** The address a service publishes: `advertise`, else a non-loopback `host`, else (wildcard) an interface's address. */
function advertisedAddress(host: string, advertise: string | undefined): string | undefined {
  if (advertise !== undefined) {
    assertAdvertisedHost(advertise, "advertise");
    if (WILDCARD.has(advertise)) throw new InvalidArgumentError(`advertise must be an address parents can reach, not the wildcard ${advertise}`);
    return advertise;
  }
  // The default loopback address is what parents use when an entry names none; another one is published.
  if (host === "127.0.0.1" || host === "localhost") return undefined;
  if (!WILDCARD.has(host)) return host; // another loopback address, or an interface's
  // Every interface: publish one parents elsewhere can reach; with none, parents on this machine use loopback.
  return Object.values(networkInterfaces())
    .flat()
    .find((candidate) => candidate !== undefined && candidate.family === "IPv4" && !candidate.internal)?.address;
}
