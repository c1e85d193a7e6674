// Types for test/helpers/etcd.mjs (imported by the etcd tests; bench/multihost.mjs uses it too).
import type { ChildProcess } from "node:child_process";

/** Debian's etcd-server (scripts/setup.sh installs it), or $MULTIFROST_ETCD. */
export declare const ETCD: string;

export interface EtcdOptions {
  /** The address etcd listens on. Default 127.0.0.1. */
  host?: string;
  /** Prepended to the etcd command, e.g. `["ip", "netns", "exec", "ns1"]`; ports are then fixed (23790/23800). */
  wrap?: readonly string[];
}

/** A throwaway single-member etcd: loopback ports, a temporary data dir; `remove()` leaves nothing. */
export interface TestEtcd {
  /** `host:port` of the client endpoint. */
  readonly endpoint: string;
  /** Its temporary data dir (removed by `remove()`). */
  readonly dataDir: string;
  /** `etcd://host:port/<prefix>/` with a prefix unique to this etcd. */
  readonly url: string;
  /** The running etcd process. */
  process(): ChildProcess;
  /** Stops etcd (SIGTERM, waits for the exit); the data dir stays for `start()`. */
  stop(): Promise<void>;
  /** Starts etcd again on the same ports and data (leases survive, as in a real restart). */
  start(): Promise<void>;
  /** Stops etcd and removes its data dir. */
  remove(): Promise<void>;
}

export declare function startTestEtcd(options?: EtcdOptions): Promise<TestEtcd>;
