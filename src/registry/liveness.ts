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
