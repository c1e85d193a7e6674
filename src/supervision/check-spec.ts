import { InvalidArgumentError } from "../errors.js";
import type { ConnectOptions, SpawnOptions } from "../parent/options.js";
import { suggestion } from "./did-you-mean.js";
import { CHECKS, WORKER_FIELDS, describe, type FieldCheck, type FieldReport, type Key } from "./spec-fields.js";
import type { ChildKind, PoolSpec, ResolvedChild, SupervisorOwnedOption, SupervisorSpec, WorkerSettings, WorkerSpec } from "./spec.js";

/**
 * The tree checker (DESIGN §5: "checked like code"). It walks a spec as untrusted data — a file
 * may hold anything — and reports every problem with the child's path (`root/pipeline/fetch`)
 * and the field (`backoff.minMs`), plus a "did you mean" for unknown keys. All problems are
 * collected before one `SpecError` is thrown, as a compiler lists all its errors.
 */

/** One problem in a spec. `keys` lead from the tree's root object to the offending key or value. */
export interface SpecIssue {
  /** The child's path in the tree, ids joined by '/'. */
  readonly path: string;
  readonly message: string;
  readonly keys: readonly Key[];
  /** Whether the problem is the key itself (unknown, refused) or its value. */
  readonly at: "key" | "value";
}

/** Where a spec came from, so that messages name it (and the line, when it is known). */
export interface SpecSource {
  readonly name: string;
  /** 1-based line and column of the key or value at `keys`, when known. */
  readonly locate?: (keys: readonly Key[], at: "key" | "value") => { line: number; col: number } | undefined;
}

/** A spec with problems: the message lists them all, one a line; `issues` holds them as data. */
export class SpecError extends InvalidArgumentError {
  readonly issues: readonly SpecIssue[];
  constructor(issues: readonly SpecIssue[], source?: SpecSource) {
    const shown = issues.slice(0, MAX_SHOWN).map((issue) => formatIssue(issue, source));
    if (issues.length > MAX_SHOWN) shown.push(`…and ${issues.length - MAX_SHOWN} more`);
    super(shown.join("\n"));
    this.issues = issues;
  }
}

const MAX_SHOWN = 20;

function formatIssue(issue: SpecIssue, source: SpecSource | undefined): string {
  const position = source?.locate?.(issue.keys, issue.at);
  const where = source === undefined ? "" : `${source.name}${position ? `:${position.line}:${position.col}` : ""}: `;
  return `${where}${issue.path}: ${issue.message}`;
}

/**
 * Checks a whole tree, every level: throws `SpecError` (an `InvalidArgumentError`) naming each
 * problem's path, or returns the spec, typed. `supervise()` runs it; `loadTree()` runs it with
 * the file as `source`.
 */
export function checkTree(spec: unknown, source?: string | SpecSource): SupervisorSpec {
  const origin = typeof source === "string" ? { name: source } : source;
  const issues: SpecIssue[] = [];
  const rootPath = isRecord(spec) && isValidId(spec["id"]) ? spec["id"] : "(root)";
  if (!isRecord(spec)) {
    const message = `a tree must be a supervisor spec (an object with id and children), got ${describe(spec)}`;
    throw new SpecError([{ path: rootPath, keys: [], at: "value", message }], origin);
  }
  const kind = checkNode(issues, spec, rootPath, [], true);
  if (kind !== undefined && kind !== "supervisor") {
    issues.unshift({ path: rootPath, keys: [], at: "value", message: `the root of a tree must be a supervisor (with children), not a ${kind}` });
  }
  if (issues.length > 0) throw new SpecError(issues, origin);
  return spec as unknown as SupervisorSpec;
}

/** Checks one child spec (not its children's specs) and tells what it is; throws `SpecError`. */
export function resolveChild(spec: unknown, path: string): ResolvedChild {
  const issues: SpecIssue[] = [];
  const kind = checkNode(issues, spec, path, [], false);
  if (issues.length > 0 || kind === undefined) throw new SpecError(issues);
  switch (kind) {
    case "worker":
      return { type: "worker", spec: spec as WorkerSpec };
    case "pool":
      return { type: "pool", spec: spec as PoolSpec };
    case "supervisor":
      return { type: "supervisor", spec: spec as SupervisorSpec };
  }
}

/** Checks a supervisor spec's own fields and its children's ids (not their specs); throws `SpecError`. */
export function checkSupervisor(record: Record<string, unknown>, path: string): void {
  const issues: SpecIssue[] = [];
  if (isRecord(record) && record["type"] === undefined && !("children" in record)) {
    issues.push({ path, keys: [], at: "value", message: "a supervisor needs children (an array of child specs)" });
  }
  const kind = checkNode(issues, record, path, [], false);
  if (kind !== undefined && kind !== "supervisor") issues.push({ path, keys: [], at: "value", message: `expected a supervisor, got a ${kind}` });
  if (issues.length > 0) throw new SpecError(issues);
}

// --- What each kind of child may contain -------------------------------------------------------

type CheckTable<K extends PropertyKey> = Readonly<Record<K, FieldCheck>>;

/** Every worker option: adding one to CommonOptions/SpawnOptions/ConnectOptions fails to compile until it is listed. */
const WORKER_SETTINGS: CheckTable<keyof WorkerSettings> = WORKER_FIELDS;

const TARGET: CheckTable<Exclude<keyof WorkerSpec, keyof WorkerSettings>> = {
  type: () => undefined,
  id: () => undefined,
  spawn: CHECKS.text,
  executable: CHECKS.executable,
  connect: CHECKS.text,
};

const POOL_OWN: CheckTable<Exclude<keyof PoolSpec, keyof WorkerSpec>> = {
  service: CHECKS.text,
  size: CHECKS.integerAtLeast0,
  maxChildren: CHECKS.integerAtLeast1,
  select: CHECKS.select,
  intensity: CHECKS.integerAtLeast0,
  periodMs: CHECKS.positiveMs,
  period: CHECKS.positiveMs,
};

const SUPERVISOR_OWN: CheckTable<keyof SupervisorSpec> = {
  type: () => undefined,
  id: () => undefined,
  strategy: CHECKS.strategy,
  intensity: CHECKS.integerAtLeast0,
  periodMs: CHECKS.positiveMs,
  period: CHECKS.positiveMs,
  children: () => undefined, // checkChildren walks them
};

const REFUSED: Readonly<Record<SupervisorOwnedOption, string>> = {
  autoRestart: "the supervisor restarts its children itself: use restart (permanent, transient, temporary) and the supervisor's intensity/periodMs",
  maxRestartAttempts: "the supervisor's intensity/periodMs limit restarts under a supervisor",
  inspect: "pass inspect to supervise() options; it covers the whole tree",
  parentActor: "the supervisor sets it",
  registry: "a registry cannot be given per child: use registryDir, or supervise({ registry }) / $MULTIFROST_REGISTRY",
  name: "a child's name is its path in the tree, made from its id",
};

/** Settings that only mean something to one mode; elsewhere they would be silently ignored. */
const SPAWN_ONLY: Readonly<Record<Exclude<keyof SpawnOptions, keyof ConnectOptions>, true>> = {
  args: true,
  env: true,
  cwd: true,
  shutdownTimeoutMs: true,
  shutdownTimeout: true,
  killTimeoutMs: true,
  killTimeout: true,
};
const CONNECT_ONLY: Readonly<Record<Exclude<keyof ConnectOptions, keyof SpawnOptions | SupervisorOwnedOption>, true>> = {
  registryDir: true,
  curve: true,
};

const KEYS: Readonly<Record<ChildKind, CheckTable<string>>> = {
  worker: { ...TARGET, ...WORKER_SETTINGS },
  pool: { ...TARGET, ...WORKER_SETTINGS, ...POOL_OWN },
  supervisor: SUPERVISOR_OWN,
};

// --- The walk ----------------------------------------------------------------------------------

/** Checks one node and, when `deep`, its descendants; returns its kind when that could be told. */
function checkNode(issues: SpecIssue[], spec: unknown, path: string, keys: readonly Key[], deep: boolean): ChildKind | undefined {
  const report: FieldReport = (at, message, where = "value") =>
    issues.push({ path, message, keys: [...keys, ...at], at: where });
  if (!isRecord(spec)) {
    report([], `a child spec must be an object, got ${describe(spec)}`);
    return undefined;
  }
  const kind = childKind(spec);
  if (kind === undefined) {
    report(["type"], `type must be "worker", "pool" or "supervisor", got ${describe(spec["type"])}${suggestion(String(spec["type"]), ["worker", "pool", "supervisor"])}`);
    return undefined;
  }
  if (!isValidId(spec["id"])) report(spec["id"] === undefined ? [] : ["id"], `id must be a non-empty string without '/', got ${describe(spec["id"])}`);
  const table = KEYS[kind];
  for (const [key, value] of Object.entries(spec)) {
    if (Object.hasOwn(REFUSED, key)) {
      report([key], `'${key}' cannot be set in a spec: ${REFUSED[key as SupervisorOwnedOption]}`, "key");
    } else if (!Object.hasOwn(table, key)) {
      report([key], unknownKey(key, Object.keys(table), kind), "key");
    } else if (value !== undefined) {
      table[key]!(value, [key], report);
    }
  }
  if (kind === "supervisor") checkChildren(issues, spec, path, keys, deep);
  else if (kind === "pool" && spec["service"] !== undefined) checkServicePool(spec, report);
  else checkTarget(spec, report);
  if (kind === "pool") checkPoolSize(spec, report);
  return kind;
}

function checkChildren(issues: SpecIssue[], spec: Record<string, unknown>, path: string, keys: readonly Key[], deep: boolean): void {
  const children = spec["children"];
  if (!Array.isArray(children)) {
    issues.push({ path, keys: [...keys, "children"], at: "value", message: `children must be an array of child specs, got ${describe(children)}` });
    return;
  }
  const firstIndex = new Map<string, number>();
  children.forEach((child: unknown, i) => {
    const id = isRecord(child) ? child["id"] : undefined;
    const childPath = isValidId(id) ? `${path}/${id}` : `${path}/children[${i}]`;
    const childKeys = [...keys, "children", i];
    if (isValidId(id)) {
      const first = firstIndex.get(id);
      if (first !== undefined) {
        issues.push({ path, keys: [...childKeys, "id"], at: "value", message: `two children have the id '${id}' (children[${first}] and children[${i}]); ids must be unique within a supervisor` });
      } else firstIndex.set(id, i);
    }
    if (deep || !isRecord(child)) checkNode(issues, child, childPath, childKeys, deep);
  });
}

function checkTarget(spec: Record<string, unknown>, report: FieldReport): void {
  const spawn = spec["spawn"] !== undefined;
  const connect = spec["connect"] !== undefined;
  if (spawn === connect) {
    report([], `give exactly one of spawn (a script to run) or connect (a registered service id)${spawn ? ", not both" : ""}`);
    return;
  }
  for (const key of Object.keys(spec)) {
    if (spec[key] === undefined) continue;
    if (connect && (key === "executable" || Object.hasOwn(SPAWN_ONLY, key))) {
      report([key], `'${key}' applies to spawned workers only; this one connects to a service`, "key");
    } else if (spawn && Object.hasOwn(CONNECT_ONLY, key)) {
      report([key], `'${key}' applies to connect workers only; this one is spawned`, "key");
    }
  }
}

/** A pool that follows a service's instances: its members come from the registry, not from spawn/connect/size. */
function checkServicePool(spec: Record<string, unknown>, report: FieldReport): void {
  for (const key of ["spawn", "connect", "size", "maxChildren", "executable", ...Object.keys(SPAWN_ONLY)]) {
    if (spec[key] !== undefined) report([key], `'${key}' does not apply to a pool that follows a service: its members are the service's registered instances`, "key");
  }
}

function checkPoolSize(spec: Record<string, unknown>, report: FieldReport): void {
  const size = spec["size"] ?? 1;
  const max = spec["maxChildren"];
  if (typeof size === "number" && typeof max === "number" && Number.isInteger(size) && max < size) {
    report(["maxChildren"], `maxChildren (${max}) must be ≥ size (${size})`);
  }
}

function unknownKey(key: string, allowed: readonly string[], kind: ChildKind): string {
  const hint = suggestion(key, allowed);
  if (hint !== "") return `unknown key '${key}'${hint}`;
  const owners = (Object.keys(KEYS) as ChildKind[]).filter((other) => other !== kind && Object.hasOwn(KEYS[other], key));
  if (owners.length > 0) return `unknown key '${key}' for a ${kind} (${owners.map((o) => `a ${o}`).join(" or ")} takes it)`;
  return `unknown key '${key}' (a ${kind} takes: ${allowed.filter((k) => k !== "type").join(", ")})`;
}

/** What a child spec is by its `type`, or by its shape when `type` is left out; undefined for an unknown `type`. */
function childKind(spec: Record<string, unknown>): ChildKind | undefined {
  const type = spec["type"];
  if (type !== undefined) return type === "worker" || type === "pool" || type === "supervisor" ? type : undefined;
  if ("children" in spec) return "supervisor";
  if ("maxChildren" in spec || "size" in spec || "service" in spec) return "pool";
  return "worker";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isValidId(id: unknown): id is string {
  return typeof id === "string" && id !== "" && !id.includes("/");
}
