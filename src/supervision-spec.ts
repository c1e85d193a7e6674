import { InvalidArgumentError } from "./errors.js";
import type { ConnectOptions, SpawnOptions } from "./parent-worker.js";

/**
 * Supervision trees as plain data (DESIGN §5): what `supervise()` takes, whether written in
 * TypeScript with the `worker()` / `supervisor()` / `pool()` helpers or read from a JSON file.
 * The `type` field is optional: `children` means a supervisor, `maxChildren`/`size` a pool.
 */

export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** Per-worker settings a tree may carry (everything but what the supervisor itself decides). */
export type WorkerSettings = Omit<
  SpawnOptions & ConnectOptions,
  "autoRestart" | "maxRestartAttempts" | "inspect" | "parentActor" | "registry" | "name" | "onOutput"
> & {
  /** Receives the child's output lines; default prints `[path STDOUT]: line`. Not available from JSON. */
  onOutput?: SpawnOptions["onOutput"];
};

export interface WorkerSpec extends WorkerSettings {
  type?: "worker";
  id: string;
  /** Spawn mode: the script to run. */
  spawn?: string;
  /** Spawn mode: the interpreter (default "node"); a string of words or an argv array. */
  executable?: string | readonly string[];
  /** Connect mode: the service id to find in the registry. */
  connect?: string;
}

export interface PoolSpec extends WorkerSettings {
  type?: "pool";
  id: string;
  spawn?: string;
  executable?: string | readonly string[];
  connect?: string;
  /** Workers started with the pool. Default 1. */
  size?: number;
  /** The pool never grows beyond this. Default: `size`. */
  maxChildren?: number;
  /** How a call picks its worker. Default "round-robin". */
  select?: "round-robin" | "least-busy";
  /** Restart intensity of the pool's own workers. Defaults as for supervisors. */
  intensity?: number;
  period?: number;
}

export interface SupervisorSpec {
  type?: "supervisor";
  id: string;
  /** Default "one_for_one". */
  strategy?: Strategy;
  /** More than `intensity` restarts within `period` ms → this supervisor gives up. Default 3 in 5000 ms (OTP's defaults). */
  intensity?: number;
  period?: number;
  children: ChildSpec[];
}

export type ChildSpec = WorkerSpec | PoolSpec | SupervisorSpec;

export function worker(spec: Omit<WorkerSpec, "type">): WorkerSpec {
  return { type: "worker", ...spec };
}

export function supervisor(spec: Omit<SupervisorSpec, "type">): SupervisorSpec {
  return { type: "supervisor", ...spec };
}

export function pool(spec: Omit<PoolSpec, "type">): PoolSpec {
  return { type: "pool", ...spec };
}

export const DEFAULT_INTENSITY = 3;
export const DEFAULT_PERIOD_MS = 5000;

export type ResolvedChild =
  | { type: "worker"; spec: WorkerSpec }
  | { type: "pool"; spec: PoolSpec }
  | { type: "supervisor"; spec: SupervisorSpec };

/** Tells what a child spec is, or throws InvalidArgumentError naming its path. */
export function resolveChild(spec: unknown, path: string): ResolvedChild {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new InvalidArgumentError(`${path}: a child spec must be an object`);
  }
  const record = spec as Record<string, unknown>;
  checkId(record["id"], path);
  const type = record["type"] ?? ("children" in record ? "supervisor" : "maxChildren" in record || "size" in record ? "pool" : "worker");
  switch (type) {
    case "supervisor":
      checkSupervisor(record, path);
      return { type: "supervisor", spec: record as unknown as SupervisorSpec };
    case "pool":
      checkTarget(record, path);
      checkPool(record, path);
      return { type: "pool", spec: record as unknown as PoolSpec };
    case "worker":
      checkTarget(record, path);
      return { type: "worker", spec: record as unknown as WorkerSpec };
    default:
      throw new InvalidArgumentError(`${path}: unknown child type ${JSON.stringify(type)} (worker, pool or supervisor)`);
  }
}

/** Checks a supervisor spec's own fields and that its children have distinct ids. */
export function checkSupervisor(record: Record<string, unknown>, path: string): void {
  checkId(record["id"], path);
  const strategy = record["strategy"];
  if (strategy !== undefined && strategy !== "one_for_one" && strategy !== "one_for_all" && strategy !== "rest_for_one") {
    throw new InvalidArgumentError(`${path}: strategy must be one_for_one, one_for_all or rest_for_one, got ${JSON.stringify(strategy)}`);
  }
  checkIntensity(record, path);
  const children = record["children"];
  if (!Array.isArray(children)) throw new InvalidArgumentError(`${path}: children must be an array`);
  const seen = new Set<string>();
  for (const child of children as Array<Record<string, unknown>>) {
    const id = child?.["id"];
    if (typeof id === "string") {
      if (seen.has(id)) throw new InvalidArgumentError(`${path}: two children have the id '${id}'`);
      seen.add(id);
    }
  }
}

function checkIntensity(record: Record<string, unknown>, path: string): void {
  const intensity = record["intensity"];
  if (intensity !== undefined && !(Number.isInteger(intensity) && (intensity as number) >= 0)) {
    throw new InvalidArgumentError(`${path}: intensity must be an integer ≥ 0, got ${JSON.stringify(intensity)}`);
  }
  const period = record["period"];
  if (period !== undefined && !(typeof period === "number" && Number.isFinite(period) && period > 0)) {
    throw new InvalidArgumentError(`${path}: period must be a positive number of ms, got ${JSON.stringify(period)}`);
  }
}

function checkPool(record: Record<string, unknown>, path: string): void {
  checkIntensity(record, path);
  const size = record["size"] ?? 1;
  if (!Number.isInteger(size) || (size as number) < 0) {
    throw new InvalidArgumentError(`${path}: size must be an integer ≥ 0, got ${JSON.stringify(size)}`);
  }
  const max = record["maxChildren"] ?? size;
  if (!Number.isInteger(max) || (max as number) < Math.max(1, size as number)) {
    throw new InvalidArgumentError(`${path}: maxChildren must be an integer ≥ size and ≥ 1, got ${JSON.stringify(max)}`);
  }
  const select = record["select"];
  if (select !== undefined && select !== "round-robin" && select !== "least-busy") {
    throw new InvalidArgumentError(`${path}: select must be "round-robin" or "least-busy", got ${JSON.stringify(select)}`);
  }
}

function checkTarget(record: Record<string, unknown>, path: string): void {
  const spawn = record["spawn"];
  const connect = record["connect"];
  if ((spawn === undefined) === (connect === undefined)) {
    throw new InvalidArgumentError(`${path}: give exactly one of spawn (a script) or connect (a service id)`);
  }
  if (spawn !== undefined && (typeof spawn !== "string" || spawn.trim() === "")) {
    throw new InvalidArgumentError(`${path}: spawn must be a script path`);
  }
  if (connect !== undefined && (typeof connect !== "string" || connect === "")) {
    throw new InvalidArgumentError(`${path}: connect must be a service id`);
  }
  const restart = record["restart"];
  if (restart !== undefined && restart !== "permanent" && restart !== "transient" && restart !== "temporary") {
    throw new InvalidArgumentError(`${path}: restart must be permanent, transient or temporary, got ${JSON.stringify(restart)}`);
  }
}

function checkId(id: unknown, path: string): asserts id is string {
  if (typeof id !== "string" || id === "" || id.includes("/")) {
    throw new InvalidArgumentError(`${path}: id must be a non-empty string without '/', got ${JSON.stringify(id)}`);
  }
}
