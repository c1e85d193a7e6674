import { errorSummary, InvalidArgumentError } from "../errors.js";
import { createLogSink, LogEvent } from "../observability/logger.js";
import { instanceKey, instancesOf, openRegistry, type RegistryBackend, type ServiceEntry } from "../registry/index.js";
import { watchService } from "../parent/service-watch.js";
import type { NodeContext } from "./node.js";
import { Pool } from "./pool.js";
import type { PoolSpec } from "./spec.js";
import type { WorkerNode } from "./worker-node.js";

/**
 * A pool that follows a service: one connect-mode member per live registered instance of
 * `spec.service`, each pinned to its instance. The registry's watch (etcd) or poll (file) adds a
 * member for an instance that registers and takes out the member of one that goes (unregistered,
 * lease expired) — before that member's own connection reports it down, so a vanished instance is
 * never counted as a crash. Calls are balanced over the members like any pool's, and idempotent
 * calls cut off by a member's loss are sent again to another.
 */
export class ServicePool extends Pool {
  readonly serviceId: string;
  readonly #registry: RegistryBackend;
  readonly #members = new Map<string, WorkerNode>();
  readonly #log: ReturnType<typeof createLogSink>;
  #unwatch: (() => void) | undefined;
  /** Changes are applied one set at a time, in order. */
  #reconciling: Promise<void> = Promise.resolve();
  #latest: readonly ServiceEntry[] | undefined;

  constructor(spec: PoolSpec, context: NodeContext) {
    super({ ...spec, size: 0, maxChildren: Number.MAX_SAFE_INTEGER }, context);
    this.serviceId = spec.service!;
    this.#registry = openRegistry(spec.registryDir === undefined ? context.registry : undefined, spec.registryDir ?? context.registryDir);
    this.#log = createLogSink(spec.logger ?? context.logger, spec.logLevel ?? context.logLevel);
  }

  /**
   * Starts empty, then adds a member for every instance there is now and waits for those that
   * come up; one that cannot be reached (a crashed host's instance still within its lease) does
   * not fail the pool: it stays down until its entry goes, and its member with it. Members are made
   * afresh at every start (a restart by the pool's supervisor too): instances change meanwhile.
   */
  override async start(): Promise<void> {
    if (this.state === "running") return;
    this.#dropMembers();
    await super.start();
    let entries: readonly ServiceEntry[] = [];
    try {
      entries = await instancesOf(this.#registry, this.serviceId);
    } catch (error) {
      if (error instanceof InvalidArgumentError) throw error; // a bad registry setting is not an outage
      // The registry is unreachable: stay empty; the watch fills the pool when it answers.
      this.#log?.log("warn", { event: LogEvent.REGISTRY_ERROR, worker: this.path, service: this.serviceId, reason: errorSummary(error) }, `${this.path}: registry lookup failed`);
    }
    this.#unwatch ??= watchService(this.#registry, this.serviceId, (found) => this.#onInstances(found));
    this.#latest = entries;
    this.#reconciling = this.#reconciling.then(() => this.#apply(entries));
    await this.#reconciling;
  }

  /** Stops following and stops every member. */
  override async stop(): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = undefined;
    await this.#reconciling;
    await super.stop();
    this.#dropMembers();
  }

  #dropMembers(): void {
    for (const node of this.#members.values()) {
      this.detachMember(node);
      void node.stop().catch(() => undefined); // already stopped, unless held by a sibling's restart
    }
    this.#members.clear();
  }

  override async resize(): Promise<void> {
    throw new InvalidArgumentError(`${this.path} follows the registered instances of '${this.serviceId}': it cannot be resized`);
  }

  /** The registered instance each member is pinned to. */
  get instances(): readonly string[] {
    return [...this.#members.keys()];
  }

  #onInstances(entries: readonly ServiceEntry[]): void {
    this.#latest = entries;
    // Members of instances that went are taken out now (synchronously, ahead of their own connection's report).
    const live = new Set(entries.map(instanceKey));
    for (const [key, node] of this.#members) {
      if (live.has(key)) continue;
      this.#members.delete(key);
      // Out of the pool now, before its own connection hears the same news and reports a down.
      this.detachMember(node);
      void node.stop().catch(() => undefined);
    }
    this.#reconciling = this.#reconciling.then(() => (this.#latest === entries ? this.#apply(entries) : undefined));
  }

  /** Adds a member for every instance that has none (removals were done as they were seen). */
  async #apply(entries: readonly ServiceEntry[]): Promise<void> {
    const starting: Promise<void>[] = [];
    for (const entry of entries) {
      const key = instanceKey(entry);
      if (this.#members.has(key)) continue;
      const { node, started } = this.addMember({ connect: this.serviceId, instance: key });
      this.#members.set(key, node);
      // A member that does not come up is its supervisor's business (restarts, intensity), not the pool's.
      starting.push(started.catch(() => undefined));
    }
    await Promise.all(starting);
  }
}
