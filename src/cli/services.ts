import type { Command } from "commander";
import { FileRegistry } from "../registry/file-registry.js";
import { isOwnerAlive } from "../registry/liveness.js";
import { DEFAULT_MAX_FILE_BYTES, RegistryFileReader, toServiceEntry } from "../registry/registry-file.js";
import { CliExit, EXIT } from "./exit.js";
import { formatAge, formatTable } from "./table.js";

/** One row of `multifrost services` (and one element of `services` in its `--json` output). */
export interface ServiceRow {
  id: string;
  pid: number;
  port: number;
  /** The registration time as written (ISO 8601). */
  started: string;
  /** The owner still runs (same pid and start time); a stale entry is replaced by the next registration. */
  alive: boolean;
  /** Milliseconds since `started` (null when it does not parse). */
  ageMs: number | null;
  /** The service's CURVE public key, when it has one. */
  publicKey?: string;
}

interface ServicesFlags {
  json?: boolean;
  registryDir?: string;
}

/** `multifrost services`: the registry's entries with liveness and age. */
export function addServicesCommand(program: Command): void {
  program
    .command("services")
    .description("list the services in the registry: id, pid, port, alive or stale, age")
    .option("--json", 'print { "registry": <file>, "services": [{ id, pid, port, started, alive, ageMs, publicKey? }] }')
    .option("--registry-dir <dir>", "the registry directory (default: $MULTIFROST_REGISTRY_DIR, else ~/.multifrost)")
    .action(async (flags: ServicesFlags) => {
      const registry = new FileRegistry(flags.registryDir !== undefined ? { dir: flags.registryDir } : {});
      const rows = await readServices(registry);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ registry: registry.path, services: rows }, null, 2)}\n`);
      } else if (rows.length === 0) {
        process.stdout.write(`no services in ${registry.path}\n`);
      } else {
        const table = formatTable(
          ["ID", "PID", "PORT", "STATUS", "AGE", "CURVE"],
          rows.map((row) => [row.id, String(row.pid), String(row.port), row.alive ? "alive" : "stale", row.ageMs === null ? "?" : formatAge(row.ageMs), row.publicKey ? "yes" : ""]),
        );
        process.stdout.write(`${table.join("\n")}\n`);
      }
    });
}

/** Every well-formed entry of the registry file, live or stale, sorted by id. */
async function readServices(registry: FileRegistry): Promise<ServiceRow[]> {
  // FileRegistry.list() keeps live entries only; the reader (with the same trust checks) shows stale ones too.
  const read = await new RegistryFileReader(registry.dir, registry.path, DEFAULT_MAX_FILE_BYTES).read();
  if (!read.ok) throw new CliExit(EXIT.failure, `cannot read ${registry.path}: ${read.problem}`);
  const now = Date.now();
  return Object.keys(read.document)
    .sort()
    .flatMap((id) => {
      const entry = toServiceEntry(read.document[id]);
      if (entry === undefined) return [];
      const started = Date.parse(entry.started);
      const row: ServiceRow = {
        id,
        pid: entry.pid,
        port: entry.port,
        started: entry.started,
        alive: isOwnerAlive(entry.pid, entry.pidStart),
        ageMs: Number.isNaN(started) ? null : Math.max(0, now - started),
      };
      if (entry.publicKey !== undefined) row.publicKey = entry.publicKey;
      return [row];
    });
}
