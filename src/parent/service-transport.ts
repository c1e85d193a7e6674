import { checkZ85Key, loadCurveKeys, type ClientCurveOptions } from "../actors/curve.js";
import { DealerChannel } from "../actors/zmq-channel.js";
import { CallTimeoutError, WorkerExitedError, WorkerStartError } from "../errors.js";
import type { RegistryBackend } from "../registry/index.js";
import type { Transport, TransportHost } from "./transport.js";

/** After a dropped connection, when to look the service up again (ms after the previous look). */
const SERVICE_RECHECK_DELAYS_MS = [0, 100, 400, 1000];

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
  #checking = false;

  readonly #curve: ClientCurveOptions | undefined;

  constructor(host: TransportHost, serviceId: string, registry: RegistryBackend, curve?: ClientCurveOptions | string) {
    this.#host = host;
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
      const entry = await this.registry.discover(this.serviceId, discoverMs);
      if (signal.aborted) return;
      this.#port = entry.port;
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
      // A refused handshake (an unauthorized key, a wrong server key) fails the start now, not at its timeout.
      const refused = new Promise<never>((_, reject) => channel.onHandshakeFailure((reason) => reject(new Error(`the service refused the connection (${reason})`))));
      refused.catch(() => undefined);
      channel.connect(`tcp://${host.settings.host}:${entry.port}`);
      channel.onDisconnect(() => void this.#checkService(channel));
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

  async close(): Promise<void> {
    this.#channel?.close();
    this.#channel = undefined;
  }

  /**
   * The TCP connection dropped. If the registry no longer lists the service at this port (it
   * stopped, or restarted elsewhere), the connection is lost; otherwise zeromq reconnects by
   * itself and heartbeats judge the rest.
   */
  async #checkService(channel: DealerChannel): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    const host = this.#host;
    try {
      // A service that just died may still look alive for a moment (not yet reaped, not yet
      // unregistered): look again a few times before leaving it to the heartbeats.
      for (const delayMs of SERVICE_RECHECK_DELAYS_MS) {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const entry = await this.registry.discover(this.serviceId, 0).catch(() => undefined);
        if (channel !== this.#channel || !host.isLive()) return;
        if (entry === undefined || entry.port !== this.#port) {
          const where = entry === undefined ? "is no longer registered" : `moved to port ${entry.port}`;
          host.lost(channel, new WorkerExitedError(host.name, null, null, [], `disconnected: the service ${where}`), `service ${where}`, false);
          return;
        }
      }
    } finally {
      this.#checking = false;
    }
  }
}
