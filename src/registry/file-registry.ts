import type { Stats } from "node:fs";
import { chmod, mkdir, realpath, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidArgumentError, RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError } from "../errors.js";
import { isOwnerAlive, processStartTime } from "./liveness.js";
import { withRegistryLock, type HeldLock } from "./locks.js";
import { assertAdvertisedHost, assertPid, assertPort, assertServiceId, type RegistrationExtras, type ServiceEntry, type RegistryBackend } from "./registry.js";
import {
  DEFAULT_MAX_FILE_BYTES,
  emptyDocument,
  RegistryFileReader,
  setAsideCorrupt,
  toServiceEntry,
  writeRegistryFile,
  type RegistryDocument,
  type RegistryReadCounters,
} from "./registry-file.js";
import { assertTrusted } from "./trust.js";

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
  /**
   * A `services.json` larger than this is refused with `RegistryError` from its size alone, never
   * read; a write that would exceed it is refused too. Default 4 MiB.
   */
  maxFileBytes?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
const DISCOVER_POLL_MS = 100;

/**
 * The v4-compatible registry: `services.json` in a private directory, shared with the JS and
 * Python v4 implementations. Updates are locked read-modify-writes replaced atomically; reads
 * take no lock (a rename is atomic, and a half-written file from JS v4, which writes in place,
 * just reads as "nothing yet"). Directory and file must be ours and not group/others-writable
 * (trust.ts), entries count while their owner runs (pid and start time, liveness.ts), and reads
 * are capped and cached while the file is unchanged (registry-file.ts).
 */
export class FileRegistry implements RegistryBackend {
  /** The registry directory (absolute). */
  readonly dir: string;
  /** The registry file (absolute). */
  readonly path: string;
  readonly #lockTimeoutMs: number;
  readonly #maxFileBytes: number;
  readonly #reader: RegistryFileReader;
  /** The registry file, for messages. */
  get location(): string {
    return this.path;
  }

  constructor(options: FileRegistryOptions = {}) {
    this.dir = resolve(options.dir || process.env[REGISTRY_DIR_ENV] || join(homedir(), ".multifrost"));
    this.path = join(this.dir, REGISTRY_FILE_NAME);
    const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    if (!(lockTimeoutMs >= 0)) throw new InvalidArgumentError(`lockTimeoutMs must be >= 0 (got ${lockTimeoutMs})`);
    this.#lockTimeoutMs = lockTimeoutMs;
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 1) {
      throw new InvalidArgumentError(`maxFileBytes must be a positive integer (got ${String(maxFileBytes)})`);
    }
    this.#maxFileBytes = maxFileBytes;
    this.#reader = new RegistryFileReader(this.dir, this.path, maxFileBytes);
  }

  /**
   * What reading cost so far: `stats` of `services.json`, `parses` (each a read and a JSON parse),
   * `cacheHits` (looks answered from the last parse because the file was unchanged).
   */
  get counters(): Readonly<RegistryReadCounters> {
    return { ...this.#reader.counters };
  }

  async register(serviceId: string, port: number, pid: number = process.pid, extras: RegistrationExtras = {}): Promise<ServiceEntry> {
    assertServiceId(serviceId);
    assertPort(port);
    assertPid(pid);
    if (extras.host !== undefined) assertAdvertisedHost(extras.host, "host");
    return this.#update((document) => {
      const existing = toServiceEntry(document[serviceId]);
      if (existing && existing.pid !== pid && isOwnerAlive(existing.pid, existing.pidStart)) {
        throw new ServiceAlreadyRunningError(serviceId, existing.pid, existing.port);
      }
      const pidStart = pid === process.pid ? ownStartTime() : processStartTime(pid);
      const started = new Date().toISOString();
      const base: ServiceEntry = pidStart === undefined ? { port, pid, started } : { port, pid, started, pidStart };
      const entry: ServiceEntry = {
        ...base,
        ...(extras.publicKey === undefined ? {} : { publicKey: extras.publicKey }),
        ...(extras.host === undefined ? {} : { host: extras.host }),
      };
      const { host, ...stored } = entry;
      document[serviceId] = host === undefined ? stored : { ...stored, advertise: host };
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
    const read = await this.#reader.read();
    return read.ok ? read.document : emptyDocument();
  }

  async #update<T>(change: (document: RegistryDocument) => { result: T; changed: boolean }): Promise<T> {
    const canonicalDir = await this.#prepareDir();
    const registryFile = join(canonicalDir, REGISTRY_FILE_NAME);
    const pythonLock = join(canonicalDir, PYTHON_LOCK_FILE_NAME);
    return withRegistryLock({ registryFile, pythonLock }, this.#lockTimeoutMs, async (lock: HeldLock) => {
      const read = await this.#reader.readFresh(registryFile);
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
        await writeRegistryFile(registryFile, document, this.#maxFileBytes);
      }
      return result;
    });
  }

  /**
   * Creates the directory (0700), refuses one that is not ours or that group/others may write,
   * narrows a readable one to 0700, and returns its canonical path: JS v4 locks
   * `realpath(services.json) + ".lock"`, so we must name the same lock directory.
   */
  async #prepareDir(): Promise<string> {
    let info: Stats;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      info = await stat(this.dir);
    } catch (error) {
      throw new RegistryError(`cannot prepare the registry directory ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
    assertTrusted("directory", this.dir, info);
    try {
      if ((info.mode & 0o077) !== 0 && process.getuid !== undefined) await chmod(this.dir, 0o700);
      return await realpath(this.dir);
    } catch (error) {
      throw new RegistryError(`cannot prepare the registry directory ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
  }
}

function liveEntry(document: RegistryDocument, serviceId: string): ServiceEntry | undefined {
  const entry = toServiceEntry(document[serviceId]);
  return entry && isOwnerAlive(entry.pid, entry.pidStart) ? entry : undefined;
}

let ownStart: number | undefined | null = null;

/** This process's start time never changes: read /proc once. */
function ownStartTime(): number | undefined {
  if (ownStart === null) ownStart = processStartTime(process.pid);
  return ownStart;
}
