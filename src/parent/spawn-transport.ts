import { join } from "node:path";
import { readStat } from "../actors/proc.js";
import { makePrivateDir, removePrivateDir } from "../actors/private-dirs.js";
import { ProcessActor, type ProcessExit } from "../actors/process-actor.js";
import { clientsOf, socketInodesOfGroup } from "../actors/socket-owner.js";
import { zapHandler, type ZapRequest } from "../actors/zap.js";
import { groupHasStoppedProcess } from "../actors/process-state.js";
import { DealerChannel } from "../actors/zmq-channel.js";
import { CallTimeoutError, WorkerExitedError, WorkerStartError } from "../errors.js";
import type { CloseMode } from "../machines/connection.js";
import { logExit, logSpawn } from "../observability/worker-log.js";
import { ENV_ENDPOINT, ENV_PORT, ENV_WORKER_MODE, createShutdown, encodeMessage, nextMessageId } from "../wire/index.js";
import type { SpawnOptions } from "./options.js";
import type { Transport, TransportHost } from "./transport.js";

/** How long a disconnected child's exit may take to be reported before the disconnect counts alone (ms). */
const EXIT_HEAD_START_MS = 150;

/**
 * Spawn mode: starts the child (no shell, its own process group) and is open once it answered a
 * heartbeat. The connection is lost when the child exits or when its socket disconnects while it
 * stays alive (seen at once through the socket monitor, not heartbeats later).
 *
 * Private by default (DESIGN §6a): the DEALER binds an `ipc://` endpoint in a fresh 0700 directory
 * (announced as MULTIFROST_ZMQ_ENDPOINT; our children use it) and 127.0.0.1:0 (announced as v4's
 * COMLINK_ZMQ_PORT, for v4 children). Every peer passes the ZAP handler before any message
 * reaches it: over IPC, the kernel's peer credentials must name a process of the child's group;
 * over TCP, the connecting socket must be held by a process of the child's group (/proc). Nobody
 * else — another user, or another process of ours — can take calls meant for the child.
 */
export class SpawnTransport implements Transport {
  readonly #host: TransportHost;
  readonly #argv: readonly string[];
  readonly #options: SpawnOptions;
  #channel: DealerChannel | undefined;
  #process: ProcessActor | undefined;
  #port: number | undefined;
  /** The current connection's private directory and ZAP policy. */
  #private: PrivateChannel | undefined;
  /**
   * Client sockets (by inode: unique while open, unlike a port) already judged: admitted (the
   * child's connections) or denied on their own. ZAP names a TCP peer by IP only, so a request is
   * judged by every connection not judged yet; one judged before cannot be the one asking (each
   * connection asks once), and leaving it out keeps a refused impostor's lingering connection from
   * making the child's look ambiguous.
   */
  readonly #judgedSockets = new Set<string>();
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

  async open(signal: AbortSignal, attempt = 0): Promise<void> {
    this.#shutdownSent = false;
    const host = this.#host;
    this.#private?.release();
    const domain = `multifrost-spawn-${nextMessageId()}`;
    const privateChannel = new PrivateChannel(zapHandler.register(domain, (request) => this.#admit(request)));
    this.#private = privateChannel;
    this.#judgedSockets.clear();
    const channel = new DealerChannel((id, error) => host.client.sendFailed(id, error), {
      zapDomain: domain,
      maxMessageSize: host.settings.maxMessageSize,
    });
    this.#channel = channel;
    // Heartbeats sent while it binds wait in the channel's queue.
    host.client.attach(channel);
    let privateEndpoint: string;
    try {
      privateEndpoint = `ipc://${join(privateChannel.makeDir(), "worker.sock")}`;
      await channel.bindEndpoint(privateEndpoint);
      this.#port = await channel.bind(host.settings.host);
    } catch (error) {
      privateChannel.release();
      throw new WorkerStartError(`Worker '${host.name}': cannot bind: ${String(error)}`, { cause: error });
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
          [ENV_ENDPOINT]: privateEndpoint,
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
    if (host.log && child.pid !== undefined) logSpawn(host.log, host.name, child.pid, attempt);
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
      this.#private?.release();
      this.#private = undefined;
    }
  }

  /** ZAP: only the spawned child's own processes may connect (see the class comment). */
  #admit(request: ZapRequest): true | string {
    const pgid = this.#process?.pid;
    if (pgid === undefined || this.#process!.exited) return "no child is running";
    if (request.mechanism !== "NULL") return `mechanism ${request.mechanism} is not expected here`;
    if (request.address.startsWith("localhost:")) {
      // IPC: "localhost:uid:gid:pid" from SO_PEERCRED.
      const [, uid, , pid] = request.address.split(":");
      if (Number(uid) !== process.getuid?.()) return `IPC peer of another user (uid ${uid})`;
      return readStat(Number(pid))?.pgrp === pgid ? true : `IPC peer pid ${pid} is not in the worker's process group`;
    }
    const port = this.#port;
    if (port === undefined) return "not bound";
    const newcomers = clientsOf(port).filter((client) => !this.#judgedSockets.has(client.inode));
    if (newcomers.length === 0) return "no matching TCP connection";
    if (this.#judgedSockets.size > 4096) this.#judgedSockets.clear(); // forgetting only makes judging stricter
    const uid = process.getuid?.();
    const inodes = socketInodesOfGroup(pgid);
    const strangers = newcomers.filter((client) => client.uid !== uid || !inodes.has(client.inode));
    if (strangers.length > 0) {
      // Alone, it is certainly the one asking: remember it. Among others, the asker is unknown.
      if (newcomers.length === 1) this.#judgedSockets.add(strangers[0]!.inode);
      const stranger = strangers[0]!;
      return stranger.uid !== uid ? `TCP peer of another user (uid ${stranger.uid})` : `TCP peer (port ${stranger.port}) is not a process of the worker's group`;
    }
    for (const client of newcomers) this.#judgedSockets.add(client.inode);
    return true;
  }

  #onExit(child: ProcessActor, channel: DealerChannel, exit: ProcessExit): void {
    if (child !== this.#process) return;
    const host = this.#host;
    host.exited(exit);
    if (host.log) logExit(host.log, host.name, child.pid, exit);
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
      const why = `disconnected: the child closed its socket, or sent a message over maxMessageSize (${host.settings.maxMessageSize} bytes)`;
      host.lost(channel, new WorkerExitedError(host.name, null, null, child?.stderrTail ?? [], why), "disconnected", false);
    }, EXIT_HEAD_START_MS);
    timer.unref();
  }

  #startFailure(spawnError: Error | undefined, exit: ProcessExit, child: ProcessActor): WorkerStartError {
    const host = this.#host;
    if (spawnError) {
      return new WorkerStartError(`Worker '${host.name}': cannot run '${this.#argv[0]}': ${spawnError.message}`, { cause: spawnError });
    }
    // The stderr tail is printed once, in this error's message: the cause states only how the
    // child ended, and keeps the lines as data (`cause.stderrTail`, not enumerable, so
    // `console.error(err)` does not list them again).
    const exited = new WorkerExitedError(host.name, exit.code, exit.signal);
    Object.defineProperty(exited, "stderrTail", { value: child.stderrTail, enumerable: false });
    return new WorkerStartError(`${exited.message} before it was ready${tailText(child)}`, { cause: exited });
  }
}

/** One connection's private directory (0700) and ZAP policy; released once. */
class PrivateChannel {
  #dir: string | undefined;
  #unregister: (() => void) | undefined;

  constructor(unregister: () => void) {
    this.#unregister = unregister;
  }

  makeDir(): string {
    this.#dir = makePrivateDir();
    return this.#dir;
  }

  release(): void {
    this.#unregister?.();
    this.#unregister = undefined;
    if (this.#dir !== undefined) removePrivateDir(this.#dir);
    this.#dir = undefined;
  }
}

function tailText(child: ProcessActor): string {
  const tail = child.stderrTail;
  return tail.length ? `\n--- last stderr lines ---\n${tail.join("\n")}` : "";
}
