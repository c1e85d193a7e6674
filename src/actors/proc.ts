import { readdirSync, readFileSync } from "node:fs";

/**
 * Reading Linux's /proc for processes and process groups: what the OS knows that signals do not
 * say (a process's state, its group, its open sockets). Every reader returns "unknown"
 * (undefined or an empty list) where /proc is missing or a process vanished meanwhile.
 */

export interface ProcStat {
  /** R running, S sleeping, T stopped, t traced, Z zombie, X dead… */
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
}

/** Fields 3–5 of /proc/<pid>/stat; the command name before them may hold spaces and parentheses. */
export function readStat(pid: number | string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ", 3);
  return { state: fields[0] ?? "", ppid: Number(fields[1]), pgrp: Number(fields[2]) };
}

/** Every process's pid and stat (one pass over /proc); undefined when there is no /proc. */
export function allProcesses(): Array<{ pid: number; stat: ProcStat }> | undefined {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  const processes: Array<{ pid: number; stat: ProcStat }> = [];
  for (const entry of entries) {
    if (entry.charCodeAt(0) > 57) continue; // only the numeric entries are processes
    const stat = readStat(entry);
    if (stat !== undefined) processes.push({ pid: Number(entry), stat });
  }
  return processes;
}

/** The processes of group `pgid` (zombies included), with their stats. */
export function groupProcesses(pgid: number): Array<{ pid: number; stat: ProcStat }> | undefined {
  return allProcesses()?.filter((process) => process.stat.pgrp === pgid);
}
