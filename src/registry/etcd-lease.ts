import type { Etcd3, Lease } from "etcd3";
import { setTimeout as sleep } from "node:timers/promises";
import { errorSummary, RegistryError } from "../errors.js";

/** Waits between attempts to re-create a lost lease: from the first to the last, doubling. */
const RENEW_FIRST_MS = 200;
const RENEW_MAX_MS = 2000;

/** What a registration reports while it runs (for logs). */
export interface LeaseEvents {
  /** The lease was lost (etcd unreachable past the TTL, or it expired); re-creating it. */
  lost?(key: string, reason: string): void;
  /** The key is back under a new lease after a loss. */
  renewed?(key: string): void;
}

/**
 * One key kept in etcd while this process runs: put under a lease that etcd3 keeps alive. A lost
 * lease (etcd down longer than the TTL, or the lease expired while we were cut off) is re-created
 * and the key put again as soon as etcd answers, so an outage never loses a service for good.
 * `stop()` revokes the lease: the key disappears at once, and watchers see it go.
 */
export class LeasedKey {
  readonly #client: Etcd3;
  readonly #key: string;
  readonly #value: string;
  readonly #ttlSeconds: number;
  readonly #callTimeoutMs: number;
  readonly #events: LeaseEvents;
  #lease: Lease | undefined;
  #stopped = false;
  #renewing: Promise<void> | undefined;
  readonly #stopController = new AbortController();

  constructor(client: Etcd3, key: string, value: string, ttlSeconds: number, callTimeoutMs: number, events: LeaseEvents = {}) {
    this.#client = client;
    this.#key = key;
    this.#value = value;
    this.#ttlSeconds = ttlSeconds;
    this.#callTimeoutMs = callTimeoutMs;
    this.#events = events;
  }

  get key(): string {
    return this.#key;
  }

  /** Grants the lease and puts the key; rejects with RegistryError when etcd does not answer in time. */
  async start(): Promise<void> {
    try {
      await this.#putUnderNewLease();
    } catch (error) {
      throw new RegistryError(`cannot register ${this.#key} in etcd: ${errorSummary(error)}`, { cause: error });
    }
  }

  /** Revokes the lease (the key goes with it); a revoke etcd does not answer is left to the TTL. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopController.abort();
    const lease = this.#lease;
    this.#lease = undefined;
    await this.#renewing?.catch(() => undefined);
    if (lease === undefined) return;
    try {
      await lease.revoke({ deadline: Date.now() + this.#callTimeoutMs });
    } catch {
      lease.release(); // etcd unreachable: stop the keep-alives, the TTL removes the key
    }
  }

  async #putUnderNewLease(): Promise<void> {
    const lease = this.#client.lease(this.#ttlSeconds, { autoKeepAlive: true });
    // A failed first grant is reported both by the rejected put and by `lost`: only the put counts.
    lease.on("lost", (error) => {
      if (lease === this.#lease) this.#onLost(errorSummary(error));
    });
    try {
      await lease.put(this.#key).value(this.#value).options({ deadline: Date.now() + this.#callTimeoutMs });
    } catch (error) {
      lease.release();
      throw error;
    }
    if (this.#stopped) {
      await lease.revoke({ deadline: Date.now() + this.#callTimeoutMs }).catch(() => lease.release());
      return;
    }
    this.#lease = lease;
  }

  #onLost(reason: string): void {
    if (this.#stopped || this.#renewing !== undefined) return;
    this.#lease?.release();
    this.#lease = undefined;
    this.#events.lost?.(this.#key, reason);
    this.#renewing = this.#renew().finally(() => {
      this.#renewing = undefined;
    });
  }

  async #renew(): Promise<void> {
    let wait = RENEW_FIRST_MS;
    while (!this.#stopped) {
      try {
        await this.#putUnderNewLease();
        if (!this.#stopped) this.#events.renewed?.(this.#key);
        return;
      } catch {
        await sleep(wait, undefined, { signal: this.#stopController.signal }).catch(() => undefined);
        wait = Math.min(wait * 2, RENEW_MAX_MS);
      }
    }
  }
}
