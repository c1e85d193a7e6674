import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { groupProcesses } from "./proc.js";

/**
 * Who holds the other end of a loopback TCP connection to one of our ports (Linux /proc). ZAP
 * tells a TCP peer's IP only, so the spawn endpoint asks the kernel instead: among the client
 * sockets connected to `port`, those not seen before must all belong to the spawned child's
 * process group. Read only when a peer connects, never on the hot path.
 */

interface ClientSocket {
  /** The client's local port (its end of the connection). */
  port: number;
  uid: number;
  inode: string;
}

const ESTABLISHED = "01";

/** Client sockets on 127.0.0.1 connected to 127.0.0.1:`port` (rows of /proc/net/tcp). */
export function clientsOf(port: number): ClientSocket[] {
  let table: string;
  try {
    table = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return [];
  }
  const target = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const clients: ClientSocket[] = [];
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (fields.length < 10 || fields[2] !== target || fields[3] !== ESTABLISHED) continue;
    clients.push({ port: parseInt(fields[1]!.split(":")[1]!, 16), uid: Number(fields[7]), inode: fields[9]! });
  }
  return clients;
}

/** Socket inodes held open by the processes of group `pgid`. */
export function socketInodesOfGroup(pgid: number): Set<string> {
  const inodes = new Set<string>();
  for (const { pid } of groupProcesses(pgid) ?? []) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith("socket:[")) inodes.add(target.slice(8, -1));
      } catch {
        // closed meanwhile
      }
    }
  }
  return inodes;
}
