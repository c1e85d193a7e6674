import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { RegistryError } from "../errors.js";
import { isPid, isPort, type ServiceEntry } from "./registry.js";

/**
 * The v4 `services.json` document: `{ "<id>": { "port", "pid", "started" } }`. Valid entries are
 * kept as stored (unknown extra keys included) so a rewrite loses nothing another writer put
 * there; invalid ones are left out and so disappear on the next write.
 */
export type RegistryDocument = Record<string, Record<string, unknown>>;

export type ParseResult =
  | { readonly ok: true; readonly document: RegistryDocument }
  | { readonly ok: false; readonly problem: string };

/** A null-prototype object, so ids such as `__proto__` or `constructor` are plain keys. */
export function emptyDocument(): RegistryDocument {
  return Object.create(null) as RegistryDocument;
}

/** Reads the file; a missing file is an empty registry. Other read failures throw `RegistryError`. */
export async function readRegistryFile(path: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { ok: true, document: emptyDocument() };
    throw new RegistryError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseRegistry(text);
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
  const { port, pid, started } = stored;
  if (!isPort(port) || !isPid(pid)) return undefined;
  return { port, pid, started: typeof started === "string" ? started : "" };
}

/**
 * Replaces the file atomically: a uniquely named temp file in the same directory, fsync, rename.
 * Readers therefore see the old or the new document, never a mix. Written like v4 (2-space JSON).
 */
export async function writeRegistryFile(path: string, document: RegistryDocument): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(JSON.stringify(document, null, 2), "utf8");
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
