import { readdirSync, readFileSync } from "node:fs";

/**
 * What the OS says about a process group (Linux /proc; elsewhere nothing is known). Read only when
 * a heartbeat is missed, so a scan of /proc (≈ 1 ms for a few hundred processes) costs nothing on
 * the hot path.
 */

/** Fields 3 (state) and 5 (pgrp) of /proc/<pid>/stat; the command name in between may hold spaces and parentheses. */
function readStat(pid: string): { state: string; pgrp: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // gone meanwhile, or no /proc
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", pgrp: Number(fields[2]) };
}

/**
 * Whether some process of group `pgid` is stopped (state T: SIGSTOP, SIGTSTP; t: a tracer holds
 * it). Such a worker cannot answer anything until someone continues it, whatever it has in flight.
 */
export function groupHasStoppedProcess(pgid: number): boolean {
  const leader = readStat(String(pgid));
  if (leader !== undefined && (leader.state === "T" || leader.state === "t")) return true;
  let pids: string[];
  try {
    pids = readdirSync("/proc");
  } catch {
    return false;
  }
  for (const pid of pids) {
    if (pid.charCodeAt(0) > 57 || pid === String(pgid)) continue; // not a pid, or the leader again
    const stat = readStat(pid);
    if (stat !== undefined && stat.pgrp === pgid && (stat.state === "T" || stat.state === "t")) return true;
  }
  return false;
}
