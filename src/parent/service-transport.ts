import { checkZ85Key, loadCurveKeys, type ClientCurveOptions } from "../actors/curve.js";
import { DealerChannel } from "../actors/zmq-channel.js";
import { CallTimeoutError, WorkerExitedError, WorkerStartError, errorSummary } from "../errors.js";
import { LogEvent } from "../observability/logger.js";
import { entryEndpoint, instanceKey, instancesOf, sameInstance, ServiceNotFoundError, type RegistryBackend, type ServiceEntry } from "../registry/index.js";
import { watchService } from "./service-watch.js";
import type { Transport, TransportHost } from "./transport.js";

/** How long a supervised reconnection waits for the service to be registered again. */
const SUPERVISED_DISCOVERY_MS = 1000;

/**
 * Connect mode: finds the service in the registry (it may have moved since), connects a DEALER to
 * it and is open once it answered a heartbeat. Closing only disconnects: the service keeps running.
 */
export class ServiceTransport implements Transport {
  readonly #host: TransportHost;
  readonly serviceId: string;
  readonly registry: RegistryBackend;
  #channel: DealerChannel | undefined;
  #port: number | undefined;
  /** The registry entry of the instance this transport is connected to. */
  #entry: ServiceEntry | undefined;
  #unwatch: (() => void) | undefined;

  readonly #curve: ClientCurveOptions | undefined;
  /** Pinned to one registered instance (a service pool's member), or any live one. */
  readonly #instance: string | undefined;

  constructor(host: TransportHost, serviceId: string, registry: RegistryBackend, curve?: ClientCurveOptions | string, instance?: string) {
    this.#host = host;
    this.#instance = instance;
    this.serviceId = serviceId;
    this.registry = registry;
    this.#curve = typeof curve === "string" ? loadCurveKeys(curve) : curve;
    if (this.#curve !== undefined) {
      checkZ85Key(this.#curve.publicKey, "curve.publicKey");
      checkZ85Key(this.#curve.secretKey, "curve.secretKey");
      if (this.#curve.serverPublicKey !== undefined) checkZ85Key(this.#curve.serverPublicKey, "curve.serverPublicKey");
    }
  }

  get port(): number | undefined {
    return this.#port;
  }

  get pid(): number | undefined {
    return undefined;
  }

  isStopped(): boolean {
    return false;
  }

  async open(signal: AbortSignal, attempt: number): Promise<void> {
    const host = this.#host;
    const startupTimeout = host.settings.startupTimeoutMs;
    // A supervised restart fails fast when the service is not registered, so its supervisor's
    // intensity can judge a vanished service (OTP: a failing start is counted, not waited out).
    const discoverMs = host.supervised && attempt > 0 ? Math.min(startupTimeout, SUPERVISED_DISCOVERY_MS) : startupTimeout;
    try {
      const entry = await this.#find(discoverMs).catch((error: unknown) => {
        host.log?.log("warn", { event: LogEvent.REGISTRY_ERROR, worker: host.name, service: this.serviceId, reason: errorSummary(error) }, `${host.name}: registry lookup failed`);
        throw error;
      });
      if (signal.aborted) return;
      this.#port = entry.port;
      this.#entry = entry;
      const curve = this.#curve;
      const serverKey = curve?.serverPublicKey ?? entry.publicKey;
      if (curve === undefined && entry.publicKey !== undefined) {
        throw new Error(`the service requires CURVE (its registry entry has a publicKey): give the curve option`);
      }
      if (curve !== undefined && serverKey === undefined) {
        throw new Error(`no server key: the registry entry has no publicKey and curve.serverPublicKey is not given`);
      }
      const channel = new DealerChannel((id, error) => host.client.sendFailed(id, error), {
        maxMessageSize: host.settings.maxMessageSize,
        curveClient: curve && { publicKey: curve.publicKey, secretKey: curve.secretKey, serverKey: serverKey! },
      });
      this.#channel = channel;
      host.client.attach(channel);
      // A refused CURVE handshake (an unauthorized key, a wrong server key) fails the start now,
      // not at its timeout. Only then: the socket monitor this needs costs two sockets.
      const refused =
        curve === undefined
          ? new Promise<never>(() => undefined)
          : new Promise<never>((_, reject) => channel.onHandshakeFailure((reason) => reject(new Error(`the service refused the connection (${reason})`))));
      refused.catch(() => undefined);
      channel.connect(entryEndpoint(entry, host.settings.host));
      this.#unwatch?.();
      this.#unwatch = watchService(this.registry, this.serviceId, (found) => this.#onInstances(channel, entry, found));
      channel.onPayload(
        (payload) => host.client.receive(payload),
        (error) => process.stderr.write(`[${host.name}] multifrost: receive loop failed: ${String(error)}\n`),
      );
      await Promise.race([host.client.ping(startupTimeout), refused]);
    } catch (error) {
      await this.close();
      if (error instanceof CallTimeoutError) {
        throw new WorkerStartError(
          `Service '${this.serviceId}' (port ${this.#port}) did not answer a heartbeat within ${startupTimeout}ms`,
          { cause: error },
        );
      }
      throw new WorkerStartError(`Cannot connect to service '${this.serviceId}': ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  }

  /** Any live instance (waiting up to `timeoutMs`), or the pinned one, which is there or gone for good. */
  async #find(timeoutMs: number): Promise<ServiceEntry> {
    const pinned = this.#instance;
    if (pinned === undefined) return this.registry.discover(this.serviceId, timeoutMs);
    const entry = (await instancesOf(this.registry, this.serviceId)).find((candidate) => instanceKey(candidate) === pinned);
    if (entry === undefined) throw new ServiceNotFoundError(`${this.serviceId}' instance '${pinned}`, 0);
    return entry;
  }

  async close(): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#channel?.close();
    this.#channel = undefined;
  }

  /**
   * The service's live instances, on every watch tick or push: ours gone (unregistered, its lease
   * expired), or moved to another port (it restarted elsewhere), means this connection is lost.
   * A service that just died may still look alive for a moment (not yet reaped, not yet
   * unregistered, its lease not yet expired): the next looks catch it, and heartbeats judge the rest.
   */
  #onInstances(channel: DealerChannel, connected: ServiceEntry, entries: readonly ServiceEntry[]): void {
    const host = this.#host;
    if (channel !== this.#channel || !host.isLive()) return;
    if (entries.some((entry) => sameInstance(entry, connected))) return;
    const moved = entries.length === 1 && connected.instance === undefined ? entries[0] : undefined;
    const where = moved === undefined ? "is no longer registered" : `moved to port ${moved.port}`;
    host.lost(channel, new WorkerExitedError(host.name, null, null, [], `disconnected: the service ${where}`), `service ${where}`, false);
  }
}
