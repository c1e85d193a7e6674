import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's etcd-server (scripts/setup.sh installs it). */
export const ETCD = process.env.MULTIFROST_ETCD ?? "/usr/bin/etcd";

/** A free TCP port on `host` a moment ago. */
async function freePort(host) {
  const server = createServer();
  server.listen(0, host);
  await once(server, "listening");
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== "object" || address === null) throw new Error("no port");
  return address.port;
}

/**
 * A throwaway single-member etcd: loopback ports (or fixed ones inside a namespace given by `wrap`),
 * a temporary data dir; `remove()` leaves nothing. Types: etcd.d.mts.
 */
export async function startTestEtcd(options = {}) {
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
  let child;

  const start = async () => {
    const started = spawn(args[0], args.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    child = started;
    // A test process that dies before remove() (a crash, a vitest timeout) takes its etcd along.
    const killAtExit = () => void started.kill("SIGKILL");
    process.once("exit", killAtExit);
    started.once("exit", () => process.removeListener("exit", killAtExit));
    let log = "";
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd did not get ready within 15 s:\n${log.slice(-2000)}`)), 15_000);
      started.stderr.setEncoding("utf8").on("data", (chunk) => {
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
    started.stderr.resume();
  };

  const stop = async () => {
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
    dataDir,
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
