import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { FileRegistry, ParentWorker, type ConnectOptions } from "../../src/index.js";
import { reapAll, startCaptured, waitFor } from "./processes.js";

export interface Service {
  process: ChildProcess;
  /** What the service printed so far. */
  stdout: () => string;
  stderr: () => string;
}

export interface ServiceHarness {
  /** This test's temporary registry directory (never ~/.multifrost). */
  readonly registryDir: string;
  readonly registry: FileRegistry;
  /** Processes reaped after each test: every service, and whatever else a test pushes. */
  readonly processes: ChildProcess[];
  /** Starts a process that registers `serviceId`; resolves once its entry (with its pid) is in the registry. */
  startService(serviceId: string, command: string, args: string[], env?: Record<string, string>): Promise<Service>;
  /** `ParentWorker.connect` on this registry, output silenced; the parent is stopped after the test. */
  connect(serviceId: string, timeoutMs?: number, options?: ConnectOptions): Promise<ParentWorker>;
}

/**
 * Connect-mode tests' set-up, for the enclosing describe (or file): a fresh registry directory
 * per test, and after each test every parent stopped, every service reaped, the directory removed.
 */
export function serviceHarness(dirPrefix: string): ServiceHarness {
  let registryDir = "";
  let registry: FileRegistry | undefined;
  const processes: ChildProcess[] = [];
  const parents: ParentWorker[] = [];

  beforeEach(() => {
    registryDir = mkdtempSync(join(tmpdir(), dirPrefix));
    registry = new FileRegistry({ dir: registryDir });
  });

  afterEach(async () => {
    await Promise.all(parents.splice(0).map((worker) => worker.stop()));
    await reapAll(processes);
    rmSync(registryDir, { recursive: true, force: true });
  });

  return {
    get registryDir() {
      return registryDir;
    },
    get registry() {
      if (registry === undefined) throw new Error("serviceHarness: used outside a test");
      return registry;
    },
    processes,

    async startService(serviceId, command, args, env = {}) {
      const run = startCaptured(command, args, { MULTIFROST_REGISTRY_DIR: registryDir, MF_SERVICE_ID: serviceId, ...env }, processes);
      const child = run.child;
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`service exited early (${child.exitCode}): ${run.stderr()}`);
          try {
            const entry = JSON.parse(readFileSync(join(registryDir, "services.json"), "utf8"))[serviceId];
            return entry?.pid === child.pid;
          } catch {
            return false;
          }
        },
        10_000,
        `service '${serviceId}' to register`,
      );
      return { process: child, stdout: run.stdout, stderr: run.stderr };
    },

    async connect(serviceId, timeoutMs = 5000, options = {}) {
      const worker = await ParentWorker.connect(serviceId, timeoutMs, { registryDir, onOutput: () => undefined, ...options });
      parents.push(worker);
      return worker;
    },
  };
}
