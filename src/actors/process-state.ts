import { groupProcesses } from "./proc.js";

/**
 * What the OS says about a process group (Linux /proc; elsewhere nothing is known). Read only when
 * a heartbeat is missed, so a scan of /proc (≈ 1 ms for a few hundred processes) costs nothing on
 * the hot path.
 */

/**
 * Whether some process of group `pgid` is stopped (state T: SIGSTOP, SIGTSTP; t: a tracer holds
 * it). Such a worker cannot answer anything until someone continues it, whatever it has in flight.
 */
export function groupHasStoppedProcess(pgid: number): boolean {
  return groupProcesses(pgid)?.some(({ stat }) => stat.state === "T" || stat.state === "t") ?? false;
}
