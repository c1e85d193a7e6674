import { ProcessActor, type ProcessExit } from "../actors/process-actor.js";
import { groupHasStoppedProcess } from "../actors/process-state.js";
import { DealerChannel } from "../actors/zmq-channel.js";
import { CallTimeoutError, WorkerExitedError, WorkerStartError } from "../errors.js";
import type { CloseMode } from "../machines/connection.js";
import { ENV_PORT, ENV_WORKER_MODE, createShutdown, encodeMessage, nextMessageId } from "../wire/index.js";
import type { SpawnOptions } from "./options.js";
import type { Transport, TransportHost } from "./transport.js";

/** How long a disconnected child's exit may take to be reported before the disconnect counts alone (ms). */
const EXIT_HEAD_START_MS = 150;

/**
 * Spawn mode: binds a DEALER on 127.0.0.1:0, starts the child with `COMLINK_ZMQ_PORT` (no shell,
 * its own process group) and is open once the child answered a heartbeat. The connection is lost
 * when the child exits or when its socket disconnects while it stays alive (seen at once through
 * the socket monitor, not heartbeats later).
 */
export class SpawnTransport implements Transport {
  readonly #host: TransportHost;
  readonly #argv: readonly string[];
  readonly #options: SpawnOptions;
  #channel: DealerChannel | undefined;
  #process: ProcessActor | undefined;
  #port: number | undefined;
  /** Set when this side asked the child to shut down, so its exit counts as normal. */
  #shutdownSent = false;

  constructor(host: TransportHost, argv: readonly string[], options: SpawnOptions) {
    this.#host = host;
    this.#argv = argv;
    this.#options = options;
  }

  get port(): number | undefined {
    return this.#port;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  isStopped(): boolean {
    const pid = this.#process?.pid;
    return pid !== undefined && !this.#process!.exited && groupHasStoppedProcess(pid);
  }

  async open(signal: AbortSignal): Promise<void> {
    this.#shutdownSent = false;
    const host = this.#host;
    const channel = new DealerChannel((id, error) => host.client.sendFailed(id, error));
    this.#channel = channel;
    // Heartbeats sent while it binds wait in the channel's queue.
    host.client.attach(channel);
    try {
      this.#port = await channel.bind(host.settings.host);
    } catch (error) {
      throw new WorkerStartError(`Worker '${host.name}': cannot bind a port: ${String(error)}`, { cause: error });
    }
    if (signal.aborted) return;
    channel.onPayload(
      (payload) => host.client.receive(payload),
      (error) => process.stderr.write(`[${host.name}] multifrost: receive loop failed: ${String(error)}\n`),
    );
    channel.onLastPeerGone(() => this.#onPeerGone(channel));
    let spawnError: Error | undefined;
    const child = new ProcessActor(
      {
        argv: this.#argv,
        cwd: this.#options.cwd,
        env: {
          ...process.env,
          PYTHONUNBUFFERED: "1",
          ...this.#options.env,
          [ENV_PORT]: String(this.#port),
          [ENV_WORKER_MODE]: "1",
        },
      },
      {
        onStdout: (line) => host.output("stdout", line),
        onStderr: (line) => host.output("stderr", line),
        onExit: (exit) => this.#onExit(child, channel, exit),
        onSpawnError: (error) => {
          spawnError = error;
        },
      },
    );
    this.#process = child;
    const startupTimeout = host.settings.startupTimeoutMs;
    try {
      const exited = child.whenExited().then((exit) => {
        throw this.#startFailure(spawnError, exit, child);
      });
      await Promise.race([host.client.ping(startupTimeout), exited]);
    } catch (error) {
      await this.close("kill");
      if (error instanceof WorkerStartError) throw error;
      if (error instanceof WorkerExitedError || spawnError) {
        throw this.#startFailure(spawnError, child.exitInfo ?? { code: null, signal: null }, child);
      }
      if (error instanceof CallTimeoutError) {
        throw new WorkerStartError(
          `Worker '${host.name}' did not answer a heartbeat within ${startupTimeout}ms (is it a comlink_ipc_v4 child?)${tailText(child)}`,
          { cause: error },
        );
      }
      throw new WorkerStartError(`Worker '${host.name}' failed to start: ${String(error)}`, { cause: error });
    }
  }

  async close(mode: CloseMode): Promise<void> {
    const child = this.#process;
    const channel = this.#channel;
    if (child && !child.exited) {
      if (mode === "kill") {
        child.signal("SIGKILL");
        await child.whenExited();
      } else {
        if (channel && !channel.closed) {
          this.#shutdownSent = true;
          channel.send(encodeMessage(createShutdown(nextMessageId())));
        }
        await child.terminate(this.#host.settings.shutdownTimeoutMs, this.#host.settings.killTimeoutMs);
      }
    }
    // A newer connection may have been opened meanwhile (stop raced a restart): leave it alone.
    if (this.#channel === channel) {
      channel?.close();
      this.#channel = undefined;
    }
  }

  #onExit(child: ProcessActor, channel: DealerChannel, exit: ProcessExit): void {
    if (child !== this.#process) return;
    const host = this.#host;
    host.exited(exit);
    if (!host.isLive()) return; // starting (open reports it), restarting or stopping
    const error = new WorkerExitedError(host.name, exit.code, exit.signal, child.stderrTail);
    host.lost(channel, error, exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`, exit.code === 0 || this.#shutdownSent);
  }

  /**
   * The child closed its socket: treated like an exit. A child that died closes it too, and its
   * exit (code, signal, stderr) says more, so the exit gets a short head start.
   */
  #onPeerGone(channel: DealerChannel): void {
    const timer = setTimeout(() => {
      const host = this.#host;
      const child = this.#process;
      if (channel !== this.#channel || !host.isLive() || this.#shutdownSent || child?.exited) return;
      host.lost(channel, new WorkerExitedError(host.name, null, null, child?.stderrTail ?? [], "disconnected"), "disconnected", false);
    }, EXIT_HEAD_START_MS);
    timer.unref();
  }

  #startFailure(spawnError: Error | undefined, exit: ProcessExit, child: ProcessActor): WorkerStartError {
    const host = this.#host;
    if (spawnError) {
      return new WorkerStartError(`Worker '${host.name}': cannot run '${this.#argv[0]}': ${spawnError.message}`, { cause: spawnError });
    }
    const exited = new WorkerExitedError(host.name, exit.code, exit.signal, child.stderrTail);
    return new WorkerStartError(`${exited.message.split("\n")[0]} before it was ready${tailText(child)}`, { cause: exited });
  }
}

function tailText(child: ProcessActor): string {
  const tail = child.stderrTail;
  return tail.length ? `\n--- last stderr lines ---\n${tail.join("\n")}` : "";
}
