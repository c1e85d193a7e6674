import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's etcd-server (scripts/setup.sh installs it). */
export const ETCD = process.env.MULTIFROST_ETCD ?? "/usr/bin/etcd";

export interface EtcdOptions {
  /** The address etcd listens on. Default 127.0.0.1. */
  host?: string;
  /** Prepended to the etcd command, e.g. `["ip", "netns", "exec", "ns1"]`. */
  wrap?: readonly string[];
}

/** A throwaway single-member etcd: loopback ports, a temporary data dir; `remove()` leaves nothing. */
export interface TestEtcd {
  /** `host:port` of the client endpoint. */
  readonly endpoint: string;
  /** `etcd://host:port/<prefix>/` with a prefix unique to this etcd. */
  readonly url: string;
  /** The running etcd process. */
  process(): ChildProcess;
  /** Stops etcd (SIGTERM, waits for the exit); the data dir stays for `start()`. */
  stop(): Promise<void>;
  /** Starts etcd again on the same ports and data (leases survive, as in a real restart). */
  start(): Promise<void>;
  /** Stops etcd and removes its data dir. */
  remove(): Promise<void>;
}

/** A free TCP port on `host` a moment ago. */
async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, "listening");
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== "object" || address === null) throw new Error("no port");
  return address.port;
}

export async function startTestEtcd(options: EtcdOptions = {}): Promise<TestEtcd> {
  const host = options.host ?? "127.0.0.1";
  const dataDir = mkdtempSync(join(tmpdir(), "multifrost-etcd-"));
  // In a namespace the ports are free by construction; probing them needs the namespace.
  const clientPort = options.wrap ? 23790 : await freePort(host);
  const peerPort = options.wrap ? 23800 : await freePort(host);
  const clientUrl = `http://${host}:${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const args = [
    ...(options.wrap ?? []),
    ETCD,
    "--name=test",
    `--data-dir=${join(dataDir, "data")}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=test=${peerUrl}`,
    "--logger=zap",
  ];
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const started = spawn(args[0]!, args.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    child = started;
    // A test process that dies before remove() (a crash, a vitest timeout) takes its etcd along.
    const killAtExit = (): void => void started.kill("SIGKILL");
    process.once("exit", killAtExit);
    started.once("exit", () => process.removeListener("exit", killAtExit));
    let log = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd did not get ready within 15 s:\n${log.slice(-2000)}`)), 15_000);
      started.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        if (log.length < 100_000) log += chunk;
        if (/serving client traffic|ready to serve client requests/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      started.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited with ${String(code)} before it was ready:\n${log.slice(-2000)}`));
      });
    });
    started.stderr!.resume();
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, "exit");
    running.kill("SIGTERM");
    const timer = setTimeout(() => running.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  const prefix = `t${process.pid}-${Date.now().toString(36)}`;
  return {
    endpoint: `${host}:${clientPort}`,
    url: `etcd://${host}:${clientPort}/${prefix}/`,
    process: () => {
      if (child === undefined) throw new Error("etcd is stopped");
      return child;
    },
    stop,
    start,
    async remove() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
