import { randomBytes } from "node:crypto";
import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import type { BigIntStats } from "node:fs";
import { basename, dirname, join } from "node:path";
import { RegistryError } from "../errors.js";
import { isAdvertisedHost, isPid, isPidStart, isPort, type ServiceEntry } from "./registry.js";
import { assertTrusted } from "./trust.js";

/**
 * The v4 `services.json` document: `{ "<id>": { "port", "pid", "started" } }` (plus our
 * `pidStart`). Valid entries are kept as stored (unknown extra keys included) so a rewrite loses
 * nothing another writer put there; invalid ones are left out and so disappear on the next write.
 */
export type RegistryDocument = Record<string, Record<string, unknown>>;

export type ParseResult =
  | { readonly ok: true; readonly document: RegistryDocument }
  | { readonly ok: false; readonly problem: string };

/** Default cap on the bytes read from `services.json` (a registry of 256-character ids holds ~10 000 entries). */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * A file whose mtime is this close to the moment it was read may be rewritten in place within
 * the same timestamp tick (JS v4 writes in place; Linux file times advance in jiffies) without
 * changing size or mtime, so its parse is not cached: the next look reads it again.
 */
const RACY_WINDOW_NS = 1_000_000_000n;

/** A null-prototype object, so ids such as `__proto__` or `constructor` are plain keys. */
export function emptyDocument(): RegistryDocument {
  return Object.create(null) as RegistryDocument;
}

/** What a reader did: how many times it stat'ed the file, read and parsed it, or answered from its cache. */
export interface RegistryReadCounters {
  stats: number;
  parses: number;
  cacheHits: number;
}

/**
 * Reads `services.json` for one registry: checks the directory and the file (see trust.ts), refuses
 * a file above `maxFileBytes` from its stat (never reading it), and keeps the last parse keyed by
 * (dev, ino, size, mtime ns, ctime ns), so polling an unchanged file costs two stats.
 */
export class RegistryFileReader {
  readonly counters: RegistryReadCounters = { stats: 0, parses: 0, cacheHits: 0 };
  #cache: { key: string; result: ParseResult } | undefined;

  constructor(
    readonly dir: string,
    readonly path: string,
    readonly maxFileBytes: number,
  ) {}

  /** A missing directory or file is an empty registry. Cached documents are shared: do not modify them. */
  async read(): Promise<ParseResult> {
    const dirInfo = await statOrUndefined(this.dir);
    if (dirInfo === undefined) return { ok: true, document: emptyDocument() };
    assertTrusted("directory", this.dir, dirInfo);
    const info = await statOrUndefined(this.path);
    this.counters.stats++;
    if (info === undefined) return { ok: true, document: emptyDocument() };
    this.#check(info);
    if (this.#cache?.key === cacheKey(info)) {
      this.counters.cacheHits++;
      return this.#cache.result;
    }
    const read = await readChecked(this.path, this.maxFileBytes, (opened) => this.#check(opened));
    if (read === undefined) return { ok: true, document: emptyDocument() };
    this.counters.parses++;
    const result = parseRegistry(read.text);
    const settled = BigInt(Date.now()) * 1_000_000n - read.info.mtimeNs > RACY_WINDOW_NS;
    this.#cache = settled ? { key: cacheKey(read.info), result } : undefined;
    return result;
  }

  /** Under the registry locks: no cache, a fresh document the caller may change. */
  async readFresh(path: string): Promise<ParseResult> {
    const read = await readChecked(path, this.maxFileBytes, (opened) => this.#check(opened, path));
    if (read === undefined) return { ok: true, document: emptyDocument() };
    this.counters.parses++;
    return parseRegistry(read.text);
  }

  #check(info: BigIntStats, path: string = this.path): void {
    assertTrusted("file", path, info);
    if (info.size > BigInt(this.maxFileBytes)) {
      throw new RegistryError(
        `refusing the registry file ${path}: ${info.size} bytes is more than maxFileBytes (${this.maxFileBytes}); ` +
          "it was not read. Remove it (or raise maxFileBytes) if it is really yours",
      );
    }
  }
}

function cacheKey(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

async function statOrUndefined(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RegistryError(`cannot stat ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Opens the file, checks what was opened (it may have been replaced since the caller's stat), and
 * reads at most `maxBytes` (+1 to notice a file that grew past the cap while being read).
 */
async function readChecked(
  path: string,
  maxBytes: number,
  check: (info: BigIntStats) => void,
): Promise<{ text: string; info: BigIntStats } | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RegistryError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const info = await handle.stat({ bigint: true });
    check(info);
    const bytes = await readAtMost(handle, Number(info.size), maxBytes);
    if (bytes.length > maxBytes) {
      throw new RegistryError(`refusing the registry file ${path}: it grew past maxFileBytes (${maxBytes}) while being read`);
    }
    return { text: bytes.toString("utf8"), info };
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle.close();
  }
}

async function readAtMost(handle: FileHandle, sizeHint: number, maxBytes: number): Promise<Buffer> {
  let buffer = Buffer.allocUnsafe(Math.min(sizeHint, maxBytes) + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) break;
      const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(bigger, 0, 0, length);
      buffer = bigger;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  return buffer.subarray(0, length);
}

export function parseRegistry(text: string): ParseResult {
  if (text.trim() === "") return { ok: false, problem: "empty file" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: (error as Error).message };
  }
  if (!isPlainObject(parsed)) return { ok: false, problem: "the top level is not a JSON object" };
  const document = emptyDocument();
  for (const [id, stored] of Object.entries(parsed)) {
    if (toServiceEntry(stored) !== undefined) document[id] = stored as Record<string, unknown>;
  }
  return { ok: true, document };
}

/** The entry's public shape, or undefined if it has no integer port 1..65535 and pid > 0. */
export function toServiceEntry(stored: unknown): ServiceEntry | undefined {
  if (!isPlainObject(stored)) return undefined;
  // Our services bound beyond loopback write their address as `advertise` (a v4 writer's `host`,
  // if any wrote one, would mean something else: it is ignored like every unknown key).
  const { port, pid, started, pidStart, publicKey, advertise } = stored;
  if (!isPort(port) || !isPid(pid)) return undefined;
  const entry: { port: number; pid: number; started: string; pidStart?: number; publicKey?: string; host?: string } = {
    port,
    pid,
    started: typeof started === "string" ? started : "",
  };
  if (isPidStart(pidStart)) entry.pidStart = pidStart;
  if (typeof publicKey === "string" && publicKey.length === 40) entry.publicKey = publicKey;
  if (isAdvertisedHost(advertise)) entry.host = advertise;
  return entry;
}

/**
 * Replaces the file atomically: a uniquely named temp file in the same directory, fsync, rename.
 * Readers therefore see the old or the new document, never a mix. Written like v4 (2-space JSON).
 */
export async function writeRegistryFile(path: string, document: RegistryDocument, maxFileBytes: number): Promise<void> {
  const text = JSON.stringify(document, null, 2);
  if (Buffer.byteLength(text, "utf8") > maxFileBytes) {
    throw new RegistryError(`not writing ${path}: the registry would exceed maxFileBytes (${maxFileBytes}), and could not be read back`);
  }
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new RegistryError(`cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Moves a corrupt file aside (kept for inspection) and says so on stderr, once. */
export async function setAsideCorrupt(path: string, problem: string): Promise<void> {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  try {
    await rename(path, aside);
  } catch (error) {
    throw new RegistryError(`cannot move the corrupt ${path} aside: ${(error as Error).message}`, { cause: error });
  }
  process.stderr.write(
    `multifrost registry: ${path} was corrupt (${problem}), starting from an empty registry; the bad file was kept as ${aside}\n`,
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
