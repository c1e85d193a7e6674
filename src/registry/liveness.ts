import { readFileSync } from "node:fs";

/**
 * True if a process with this pid exists. Signal 0 checks without signalling; EPERM means the
 * process exists but belongs to another user. (Same answer as v4's pidusage/psutil checks,
 * without spawning `ps` on platforms where pidusage does.)
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // 0 and negatives would address process groups
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface ProcStat {
  /** Field 3: R, S, D, Z (zombie), X (dead), ... */
  readonly state: string;
  /** Field 22: when the process started, in clock ticks since boot (`sysconf(_SC_CLK_TCK)`, usually 100/s). */
  readonly startTime: number;
}

/** `/proc/<pid>/stat`, or undefined where there is no /proc, it is hidden (hidepid), or the process is gone. */
function readProcStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses and may itself contain ") " and spaces.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTime = Number(fields[19]); // fields[0] is field 3, so field 22 is fields[19]
  if (state === undefined || !Number.isSafeInteger(startTime)) return undefined;
  return { state, startTime };
}

/**
 * The process's start time as recorded in a registry entry's `pidStart`: field 22 of
 * `/proc/<pid>/stat`, clock ticks since boot. Undefined where it cannot be read (not Linux,
 * `/proc` mounted with hidepid, or no such process).
 */
export function processStartTime(pid: number): number | undefined {
  return readProcStat(pid)?.startTime;
}

/**
 * True if the process that wrote an entry still runs. With `pidStart`, the pid must also have
 * the same start time (otherwise the pid was reused by an unrelated process) and must not be a
 * zombie (it exited; its sockets are closed). Without it (v4 writers), or where `/proc` cannot
 * tell, this is `isProcessAlive(pid)`.
 */
export function isOwnerAlive(pid: number, pidStart?: number): boolean {
  const stat = readProcStat(pid);
  if (stat === undefined) return isProcessAlive(pid);
  if (stat.state === "Z" || stat.state === "X") return false;
  return pidStart === undefined || stat.startTime === pidStart;
}
