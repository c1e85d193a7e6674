import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll } from "vitest";
import { closeOpenedRegistries, openRegistry, type RegistryBackend, type ServiceEntry } from "../../src/index.js";
import { startTestEtcd, type TestEtcd } from "./etcd.mjs";
import { fixture } from "./fixtures.js";
import { descendants, reapAll, startCaptured, waitFor } from "./processes.js";

const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface EtcdHarness {
  /** The file's throwaway etcd. */
  readonly etcd: TestEtcd;
  /** The current test's registry URL (a prefix of its own, 2 s leases). */
  readonly url: string;
  /** A fresh prefix for this test with leases of `ttl` seconds (default 2); returns its URL. */
  nextUrl(ttl?: number): string;
  /** `openRegistry(nextUrl())`. */
  registry(): RegistryBackend;
  /** Processes reaped after each test. */
  readonly processes: ChildProcess[];
  /** Run (newest first) after each test: parents and trees to stop. */
  readonly stops: (() => Promise<unknown>)[];
  /** A supervised-worker.mjs service registered under `url`; resolves once its entry is there (a watch, not a poll). */
  startService(serviceId: string, env?: Record<string, string>): Promise<ChildProcess>;
  /** Resolves with `child`'s entry under `serviceId` in the registry at `registryUrl` once it is there; rejects if it exits first or after 10 s. */
  registered(child: ChildProcess, serviceId: string, registryUrl?: string): Promise<ServiceEntry>;
  /** Runs the built `multifrost` command to its end. */
  cli(args: string[], env?: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/**
 * The etcd tests' set-up for the enclosing file: one throwaway etcd (Debian's etcd-server on
 * loopback ports, a temporary data dir), a key prefix per test, and after each test every parent
 * stopped, every process reaped and etcd running again; after the file, etcd and its data gone.
 */
export function etcdHarness(): EtcdHarness {
  let etcd: TestEtcd | undefined;
  let url = "";
  let serial = 0;
  const processes: ChildProcess[] = [];
  const stops: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    etcd = await startTestEtcd();
  }, 30_000);
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
    await reapAll(processes);
    if (etcd !== undefined && etcd.process().exitCode !== null) await etcd.start();
    if (etcd !== undefined && etcd.process().signalCode === null) etcd.process().kill("SIGCONT"); // a test that paused it
  });
  afterAll(async () => {
    await closeOpenedRegistries();
    await etcd?.remove();
    // Services, parents' children and etcd itself: nothing of this file may outlive it.
    await waitFor(() => descendants().length === 0, 5000, "no process of the etcd tests left behind");
  });

  const harness: EtcdHarness = {
    get etcd() {
      if (etcd === undefined) throw new Error("etcdHarness: used outside a test");
      return etcd;
    },
    get url() {
      return url;
    },
    nextUrl(ttl = 2) {
      url = `etcd://${harness.etcd.endpoint}/test-${process.pid}-${++serial}/?ttl=${ttl}`;
      return url;
    },
    registry() {
      return openRegistry(harness.nextUrl());
    },
    processes,
    stops,
    async startService(serviceId, env = {}) {
      const child = spawn(process.execPath, [fixture("supervised-worker.mjs")], {
        env: { ...process.env, MULTIFROST_REGISTRY: url, MF_SERVICE_ID: serviceId, ...env },
        stdio: ["ignore", "ignore", "inherit"],
      });
      processes.push(child);
      await harness.registered(child, serviceId);
      return child;
    },
    registered(child, serviceId, registryUrl = url) {
      const registry = openRegistry(registryUrl);
      return new Promise<ServiceEntry>((resolve, reject) => {
        const timer = setTimeout(() => done(undefined, new Error(`process ${child.pid} did not register ${serviceId} within 10 s`)), 10_000);
        const exited = (): void => done(undefined, new Error(`process ${child.pid} exited before it registered ${serviceId}`));
        child.once("exit", exited);
        const unwatch = registry.watch!(serviceId, (entries) => {
          const mine = entries.find((entry) => entry.pid === child.pid);
          if (mine !== undefined) done(mine);
        });
        function done(entry: ServiceEntry | undefined, error?: Error): void {
          clearTimeout(timer);
          child.off("exit", exited);
          queueMicrotask(unwatch);
          if (entry !== undefined) resolve(entry);
          else reject(error);
        }
      });
    },
    async cli(args, env = {}) {
      const run = startCaptured(process.execPath, [CLI, ...args], env, processes);
      const { code } = await run.exited;
      return { code, stdout: run.stdout(), stderr: run.stderr() };
    },
  };
  return harness;
}
