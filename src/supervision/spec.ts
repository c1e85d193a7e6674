import type { ConnectOptions, SpawnOptions } from "../parent/options.js";

/**
 * Supervision trees as plain data (DESIGN §5): what `supervise()` takes, whether written in
 * TypeScript with the `worker()` / `supervisor()` / `pool()` helpers or read from a JSON or YAML
 * file by `loadTree()`. The `type` field is optional: `children` means a supervisor,
 * `maxChildren`/`size` a pool, anything else a worker. `check-spec.ts` checks every field.
 */

export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** Options the supervisor sets on its workers itself; a spec that gives them is refused. */
export type SupervisorOwnedOption = "autoRestart" | "maxRestartAttempts" | "inspect" | "parentActor" | "registry" | "name";

/** Per-worker settings a tree may carry (every ParentWorker option but what the supervisor decides). */
export type WorkerSettings = Omit<SpawnOptions & ConnectOptions, SupervisorOwnedOption | "onOutput" | "logger"> & {
  /** Receives the child's output lines; default prints `[path STDOUT]: line`. Not available from a file. */
  onOutput?: SpawnOptions["onOutput"];
  /** This worker's lifecycle logger; default: `supervise()`'s `logger`. Not available from a file. */
  logger?: SpawnOptions["logger"];
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
  /**
   * Follow a service: one member per live registered instance of this service id, on any host
   * (etcd) — instances that register are added, instances that go (unregistered, lease expired)
   * are removed. Replaces spawn/connect/size/maxChildren.
   */
  service?: string;
  /** Workers started with the pool. Default 1. */
  size?: number;
  /** The pool never grows beyond this. Default: `size`. */
  maxChildren?: number;
  /** How a call picks its worker. Default "round-robin". */
  select?: "round-robin" | "least-busy";
  /** Restart intensity of the pool's own workers. Defaults as for supervisors. */
  intensity?: number;
  /** The window of `intensity`, in ms. Defaults as for supervisors. */
  periodMs?: number;
  /** Alias of `periodMs`. */
  period?: number;
}

export interface SupervisorSpec {
  type?: "supervisor";
  id: string;
  /** Default "one_for_one". */
  strategy?: Strategy;
  /**
   * More than `intensity` restarts within `periodMs` → this supervisor gives up.
   * @default 3
   */
  intensity?: number;
  /**
   * The window of `intensity`, in ms (OTP's default period, 5 s).
   * @default 5000
   */
  periodMs?: number;
  /** Alias of `periodMs`; `periodMs` wins when both are given. */
  period?: number;
  children: ChildSpec[];
}

export type ChildSpec = WorkerSpec | PoolSpec | SupervisorSpec;

export type ChildKind = "worker" | "pool" | "supervisor";

export type ResolvedChild =
  | { type: "worker"; spec: WorkerSpec }
  | { type: "pool"; spec: PoolSpec }
  | { type: "supervisor"; spec: SupervisorSpec };

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
