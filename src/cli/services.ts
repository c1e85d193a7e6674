import { checkRegistryFlag, REGISTRY_FLAG_HELP } from "./registry-flag.js";
import type { Command } from "commander";
import { FileRegistry } from "../registry/file-registry.js";
import { closeOpenedRegistries, openRegistry } from "../registry/open-registry.js";
import type { RegistryBackend, ServiceEntry } from "../registry/registry.js";
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
  /** Where parents connect (etcd entries, and file entries of services bound beyond loopback). */
  host?: string;
  /** The machine the service runs on (etcd entries). */
  hostname?: string;
  /** The registration, where one id has several (etcd). */
  instance?: string;
}

interface ServicesFlags {
  json?: boolean;
  registryDir?: string;
  registry?: string;
}

/** `multifrost services`: the registry's entries with liveness and age. */
export function addServicesCommand(program: Command): void {
  program
    .command("services")
    .description("list the services in the registry: id, pid, port, alive or stale, age")
    .option("--json", 'print { "registry": <file>, "services": [{ id, pid, port, started, alive, ageMs, publicKey? }] }')
    .option("--registry-dir <dir>", "the registry directory (default: $MULTIFROST_REGISTRY_DIR, else ~/.multifrost)")
    .option("--registry <url>", REGISTRY_FLAG_HELP)
    .action(async (flags: ServicesFlags) => {
      checkRegistryFlag(flags.registry);
      const registry = openRegistry(flags.registry, flags.registryDir);
      const location = registry instanceof FileRegistry ? registry.path : (registry.location ?? "the registry");
      let rows: ServiceRow[];
      try {
        rows = registry instanceof FileRegistry ? await readServices(registry) : await readInstances(registry);
      } finally {
        await closeOpenedRegistries();
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ registry: location, services: rows }, null, 2)}\n`);
      } else if (rows.length === 0) {
        process.stdout.write(`no services in ${location}\n`);
      } else if (registry instanceof FileRegistry) {
        const table = formatTable(
          ["ID", "PID", "PORT", "STATUS", "AGE", "CURVE"],
          rows.map((row) => [row.id, String(row.pid), String(row.port), row.alive ? "alive" : "stale", age(row), row.publicKey ? "yes" : ""]),
        );
        process.stdout.write(`${table.join("\n")}\n`);
      } else {
        const table = formatTable(
          ["ID", "HOST", "PORT", "PID", "MACHINE", "AGE", "CURVE", "INSTANCE"],
          rows.map((row) => [row.id, row.host ?? "", String(row.port), String(row.pid), row.hostname ?? "", age(row), row.publicKey ? "yes" : "", row.instance ?? ""]),
        );
        process.stdout.write(`${table.join("\n")}\n`);
      }
    });
}

function age(row: ServiceRow): string {
  return row.ageMs === null ? "?" : formatAge(row.ageMs);
}

/** A registry with leases (etcd): every registered instance is alive while its lease is. */
async function readInstances(registry: RegistryBackend): Promise<ServiceRow[]> {
  if (registry.listInstances === undefined) {
    return Object.entries(await registry.list()).map(([id, entry]) => ({ id, ...rowOf(entry) }));
  }
  return (await registry.listInstances()).map(({ serviceId, entry }) => ({ id: serviceId, ...rowOf(entry) }));
}

function rowOf(entry: ServiceEntry): Omit<ServiceRow, "id"> {
  const started = Date.parse(entry.started);
  return {
    pid: entry.pid,
    port: entry.port,
    started: entry.started,
    alive: true,
    ageMs: Number.isNaN(started) ? null : Math.max(0, Date.now() - started),
    ...(entry.publicKey === undefined ? {} : { publicKey: entry.publicKey }),
    ...(entry.host === undefined ? {} : { host: entry.host }),
    ...(entry.hostname === undefined ? {} : { hostname: entry.hostname }),
    ...(entry.instance === undefined ? {} : { instance: entry.instance }),
  };
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
      if (entry.host !== undefined) row.host = entry.host;
      return [row];
    });
}
