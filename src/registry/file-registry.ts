import { chmod, mkdir, realpath, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidArgumentError, RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError } from "../errors.js";
import { isProcessAlive } from "./liveness.js";
import { withRegistryLock, type HeldLock } from "./locks.js";
import { assertPid, assertPort, assertServiceId, type ServiceEntry, type RegistryBackend } from "./registry.js";
import {
  emptyDocument,
  readRegistryFile,
  setAsideCorrupt,
  toServiceEntry,
  writeRegistryFile,
  type ParseResult,
  type RegistryDocument,
} from "./registry-file.js";

/** Environment variable that overrides the registry directory (the `dir` option wins over it). */
export const REGISTRY_DIR_ENV = "MULTIFROST_REGISTRY_DIR";
export const REGISTRY_FILE_NAME = "services.json";
/** Python v4's lock file, next to the registry file. */
export const PYTHON_LOCK_FILE_NAME = "services.lock";

export interface FileRegistryOptions {
  /** Directory holding `services.json`. Default: `$MULTIFROST_REGISTRY_DIR`, else `~/.multifrost`. */
  dir?: string;
  /** How long to wait for each of the two registry locks before `RegistryError`. Default 10 000 ms. */
  lockTimeoutMs?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
const DISCOVER_POLL_MS = 100;

/**
 * The v4-compatible registry: `services.json` in a private directory, shared with the JS and
 * Python v4 implementations. Updates are locked read-modify-writes replaced atomically; reads
 * take no lock (a rename is atomic, and a half-written file from JS v4, which writes in place,
 * just reads as "nothing yet").
 */
export class FileRegistry implements RegistryBackend {
  /** The registry directory (absolute). */
  readonly dir: string;
  /** The registry file (absolute). */
  readonly path: string;
  readonly #lockTimeoutMs: number;

  constructor(options: FileRegistryOptions = {}) {
    this.dir = resolve(options.dir || process.env[REGISTRY_DIR_ENV] || join(homedir(), ".multifrost"));
    this.path = join(this.dir, REGISTRY_FILE_NAME);
    const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    if (!(lockTimeoutMs >= 0)) throw new InvalidArgumentError(`lockTimeoutMs must be >= 0 (got ${lockTimeoutMs})`);
    this.#lockTimeoutMs = lockTimeoutMs;
  }

  async register(serviceId: string, port: number, pid: number = process.pid): Promise<ServiceEntry> {
    assertServiceId(serviceId);
    assertPort(port);
    assertPid(pid);
    return this.#update((document) => {
      const existing = toServiceEntry(document[serviceId]);
      if (existing && existing.pid !== pid && isProcessAlive(existing.pid)) {
        throw new ServiceAlreadyRunningError(serviceId, existing.pid, existing.port);
      }
      const entry: ServiceEntry = { port, pid, started: new Date().toISOString() };
      document[serviceId] = { ...entry };
      return { result: entry, changed: true };
    });
  }

  async unregister(serviceId: string, pid: number = process.pid): Promise<boolean> {
    assertServiceId(serviceId);
    assertPid(pid);
    return this.#update((document) => {
      if (toServiceEntry(document[serviceId])?.pid !== pid) return { result: false, changed: false };
      delete document[serviceId];
      return { result: true, changed: true };
    });
  }

  async lookup(serviceId: string): Promise<ServiceEntry | undefined> {
    assertServiceId(serviceId);
    return liveEntry(await this.#readUnlocked(), serviceId);
  }

  async discover(serviceId: string, timeoutMs: number): Promise<ServiceEntry> {
    assertServiceId(serviceId);
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      throw new InvalidArgumentError(`timeoutMs must be a number >= 0 (got ${String(timeoutMs)})`);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const entry = liveEntry(await this.#readUnlocked(), serviceId);
      if (entry) return entry;
      const left = deadline - Date.now();
      if (left <= 0) throw new ServiceNotFoundError(serviceId, timeoutMs);
      await sleep(Math.min(DISCOVER_POLL_MS, left));
    }
  }

  async list(): Promise<Record<string, ServiceEntry>> {
    const document = await this.#readUnlocked();
    const live = Object.create(null) as Record<string, ServiceEntry>;
    for (const serviceId of Object.keys(document)) {
      const entry = liveEntry(document, serviceId);
      if (entry) live[serviceId] = entry;
    }
    return live;
  }

  /** A file being rewritten in place (JS v4) may not parse: read it as empty, the next look will tell. */
  async #readUnlocked(): Promise<RegistryDocument> {
    const read: ParseResult = await readRegistryFile(this.path);
    return read.ok ? read.document : emptyDocument();
  }

  async #update<T>(change: (document: RegistryDocument) => { result: T; changed: boolean }): Promise<T> {
    const canonicalDir = await this.#prepareDir();
    const registryFile = join(canonicalDir, REGISTRY_FILE_NAME);
    const pythonLock = join(canonicalDir, PYTHON_LOCK_FILE_NAME);
    return withRegistryLock({ registryFile, pythonLock }, this.#lockTimeoutMs, async (lock: HeldLock) => {
      const read = await readRegistryFile(registryFile);
      let document: RegistryDocument;
      if (read.ok) {
        document = read.document;
      } else {
        // Under both locks nobody is writing, so this is real damage, not a write in progress.
        await setAsideCorrupt(registryFile, read.problem);
        document = emptyDocument();
      }
      const { result, changed } = change(document);
      if (changed) {
        lock.assertHeld();
        await writeRegistryFile(registryFile, document);
      }
      return result;
    });
  }

  /**
   * Creates the directory (0700) or narrows a wider one we own, and returns its canonical path:
   * JS v4 locks `realpath(services.json) + ".lock"`, so we must name the same lock directory.
   */
  async #prepareDir(): Promise<string> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const info = await stat(this.dir);
      if ((info.mode & 0o077) !== 0 && info.uid === process.getuid?.()) await chmod(this.dir, 0o700);
      return await realpath(this.dir);
    } catch (error) {
      throw new RegistryError(`cannot prepare the registry directory ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
  }
}

function liveEntry(document: RegistryDocument, serviceId: string): ServiceEntry | undefined {
  const entry = toServiceEntry(document[serviceId]);
  return entry && isProcessAlive(entry.pid) ? entry : undefined;
}
