import { open, stat, unlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { RegistryError } from "../errors.js";
import { isProcessAlive } from "./liveness.js";

/**
 * Mutual exclusion for one read-modify-write of the registry file, against
 *  - other operations of this process: a promise chain per file, so they queue instead of polling;
 *  - JS v4 and other Multifrost TS processes: proper-lockfile's lock directory `<file>.lock`;
 *  - Python v4: `services.lock`, created exclusively with the owner's pid inside, removed on release.
 * JS v4 and Python v4 each take only their own lock; we take both, always in this order, so our
 * writers exclude both and cannot deadlock each other.
 */
export interface RegistryLockPaths {
  /** The registry file (proper-lockfile locks `<registryFile>.lock`). */
  readonly registryFile: string;
  /** Python v4's lock file. */
  readonly pythonLock: string;
}

export interface HeldLock {
  /** Throws `RegistryError` if the proper-lockfile lock was lost (e.g. judged stale by another process). */
  assertHeld(): void;
}

/** proper-lockfile's staleness threshold, as JS v4 uses it (the default). */
const STALE_MS = 10_000;
/** A `services.lock` without a readable pid this old is left over from a crash, not being written. */
const UNREADABLE_PYTHON_LOCK_STALE_MS = 30_000;
const PYTHON_LOCK_POLL_MS = 50;

const queues = new Map<string, Promise<void>>();

export async function withRegistryLock<T>(
  paths: RegistryLockPaths,
  timeoutMs: number,
  critical: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  return serialize(paths.registryFile, async () => {
    const jsLock = await acquireJsLock(paths.registryFile, timeoutMs);
    try {
      const releasePython = await acquirePythonLock(paths.pythonLock, timeoutMs);
      try {
        return await critical(jsLock);
      } finally {
        await releasePython();
      }
    } finally {
      await jsLock.release();
    }
  });
}

async function serialize<T>(key: string, task: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.then(task);
  const done = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, done);
  try {
    return await run;
  } finally {
    if (queues.get(key) === done) queues.delete(key);
  }
}

interface JsLock extends HeldLock {
  release(): Promise<void>;
}

async function acquireJsLock(file: string, timeoutMs: number): Promise<JsLock> {
  // Loaded on first use: proper-lockfile installs process exit hooks (signal-exit) when imported.
  const { lock } = await import("proper-lockfile");
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (;;) {
    let compromised: Error | undefined;
    try {
      const release = await lock(file, {
        realpath: false, // the file may not exist yet; the caller passes the canonical path
        stale: STALE_MS,
        retries: 0, // we retry ourselves, against a deadline
        onCompromised: (error) => {
          compromised = error; // the default throws from a timer, which would crash the process
        },
      });
      return {
        assertHeld() {
          if (compromised) throw new RegistryError(`lost the registry lock ${file}.lock: ${compromised.message}`, { cause: compromised });
        },
        async release() {
          await release().catch(() => undefined); // already released when compromised
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ELOCKED") {
        throw new RegistryError(`cannot lock ${file}: ${(error as Error).message}`, { cause: error });
      }
      if (Date.now() >= deadline) {
        throw new RegistryError(`the registry lock ${file}.lock was still held after ${timeoutMs}ms`, { cause: error });
      }
      await sleep(jitter(delay));
      delay = Math.min(delay * 1.5, 100);
    }
  }
}

async function acquirePythonLock(path: string, timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, "wx", 0o600);
      try {
        await handle.writeFile(String(process.pid), "utf8");
      } finally {
        await handle.close();
      }
      return () => unlink(path).catch(() => undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new RegistryError(`cannot create the registry lock ${path}: ${(error as Error).message}`, { cause: error });
      }
    }
    if (await removeIfStale(path)) continue;
    if (Date.now() >= deadline) {
      const holder = await readHolder(path);
      throw new RegistryError(
        `the registry lock ${path} was still held after ${timeoutMs}ms` +
          (holder.pid === undefined ? "" : ` by pid ${holder.pid}`) +
          "; remove it if no Multifrost process is updating the registry",
      );
    }
    await sleep(jitter(PYTHON_LOCK_POLL_MS * 1.5));
  }
}

interface LockHolder {
  pid: number | undefined;
  ino: number;
  mtimeMs: number;
}

/** The pid inside the lock file (Python writes it just after creating the file), or undefined if gone. */
async function readHolder(path: string): Promise<Partial<LockHolder>> {
  try {
    const handle = await open(path, "r");
    try {
      const { ino, mtimeMs } = await handle.stat();
      const digits = /^\s*(\d+)\s*$/.exec(await handle.readFile("utf8"))?.[1];
      return { pid: digits === undefined ? undefined : Number(digits), ino, mtimeMs };
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new RegistryError(`cannot read the registry lock ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Removes a `services.lock` whose owner is gone (Python v4 never removes a stale one), and
 * resolves true when the caller should try to create the lock again at once. Only one of our
 * writers gets here at a time (it holds the proper-lockfile lock), so two cannot both decide the
 * same file is stale and one remove the other's fresh lock.
 */
async function removeIfStale(path: string): Promise<boolean> {
  const holder = await readHolder(path);
  if (holder.ino === undefined || holder.mtimeMs === undefined) return true; // released meanwhile
  let why: string;
  if (holder.pid === undefined) {
    const ageMs = Date.now() - holder.mtimeMs;
    if (ageMs <= UNREADABLE_PYTHON_LOCK_STALE_MS) return false; // its owner may be writing its pid right now
    why = `no pid inside, ${Math.round(ageMs / 1000)} s old`;
  } else if (holder.pid === process.pid) {
    why = "left behind by this process"; // our operations are serialised, so none holds it now
  } else if (!isProcessAlive(holder.pid)) {
    why = `its owner, pid ${holder.pid}, is gone`;
  } else {
    return false;
  }
  // Still the same file? Its owner may have released it and a new owner taken it meanwhile.
  const now = await stat(path).catch(() => undefined);
  if (now === undefined) return true;
  if (now.ino !== holder.ino || now.mtimeMs !== holder.mtimeMs) return true;
  await unlink(path).catch(() => undefined);
  process.stderr.write(`multifrost registry: removed the stale lock ${path} (${why})\n`);
  return true;
}

/** 50–100 % of `ms`, so processes that collided do not retry in lockstep. */
function jitter(ms: number): number {
  return ms * (0.5 + Math.random() * 0.5);
}
