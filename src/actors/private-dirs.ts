import { lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The 0700 directories that hold spawn mode's private ipc:// endpoints. Each is removed when its
 * connection closes; what a process could not remove itself — it exited without stopping its
 * workers, or was SIGKILLed — goes at its exit, or is swept by the next process of the same user
 * that makes one (the owner's pid is in the name: `multifrost-<pid>-XXXXXX`).
 */

const live = new Set<string>();
let started = false;

/** A fresh private directory (mode 0700, as mkdtemp makes it). */
export function makePrivateDir(): string {
  if (!started) {
    started = true;
    sweepStale();
    process.on("exit", () => {
      for (const dir of live) rmSync(dir, { recursive: true, force: true });
    });
  }
  const dir = mkdtempSync(join(tmpdir(), `multifrost-${process.pid}-`));
  live.add(dir);
  return dir;
}

export function removePrivateDir(dir: string): void {
  live.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Removes our own private directories whose process is gone. */
function sweepStale(): void {
  const base = tmpdir();
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const entry of entries) {
    const pid = Number(/^multifrost-(\d+)-/.exec(entry)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    const path = join(base, entry);
    try {
      const stat = lstatSync(path);
      if (stat.isDirectory() && (uid === undefined || stat.uid === uid)) rmSync(path, { recursive: true, force: true });
    } catch {
      // removed meanwhile, or not ours to remove
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
