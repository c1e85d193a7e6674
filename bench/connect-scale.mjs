// Connect-mode scale (issue 10): one process holding N connections to one service (default 5000),
// with default heartbeats; then a fresh parent process connects and makes a call, timed from its
// own start of connect() to its first reply. Reports per-connection memory and descriptors.
//
//   node bench/connect-scale.mjs [--quick] [--connections=N]      (run `npm run build` first)
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FileRegistry, ParentWorker } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const countArg = process.argv.find((a) => a.startsWith("--connections="));
const N = countArg ? Number(countArg.split("=")[1]) : quick ? 1000 : 5000;
const SERVICE = fileURLToPath(new URL("../test/fixtures/supervised-worker.mjs", import.meta.url));
const DIST = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const log = (msg) => process.stderr.write(`[bench:connect-scale] ${msg}\n`);
const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
const fds = () => readdirSync("/proc/self/fd").length;

const registryDir = mkdtempSync(join(tmpdir(), "mf-scale-"));
const registry = new FileRegistry({ dir: registryDir });
const env = { ...process.env, MULTIFROST_REGISTRY_DIR: registryDir, MF_SERVICE_ID: "scale" };
const service = spawn(process.execPath, [SERVICE], { env, stdio: ["ignore", "ignore", "inherit"] });
const workers = [];
try {
  await registry.discover("scale", 10_000);
  const baseline = { rss: rssMiB(), fds: fds() };
  const t0 = performance.now();
  const BATCH = 250;
  for (let i = 0; i < N; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, N - i) }, () => ParentWorker.forService("scale", { registry, onOutput() {} }));
    workers.push(...batch);
    await Promise.all(batch.map((w) => w.start()));
  }
  const connectSeconds = (performance.now() - t0) / 1000;
  const sample = await Promise.all(workers.filter((_, i) => i % 50 === 0).map((w) => w.call.add(1, 1)));
  if (!sample.every((v) => v === 2)) throw new Error("a call failed");
  const held = { rss: rssMiB(), fds: fds() };
  log(`${N} connected in ${connectSeconds.toFixed(1)} s`);

  // A fresh parent, in its own process, while the N stay connected.
  const fresh = [];
  for (let i = 0; i < 5; i++) {
    const code = `import { ParentWorker } from ${JSON.stringify(DIST)};
      const t = performance.now(); const w = await ParentWorker.connect("scale", 5000, { onOutput() {} });
      await w.start(); const r = await w.call.add(2, 2); const ms = performance.now() - t; await w.stop();
      console.log(JSON.stringify({ ms, r }));`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    await new Promise((resolve) => child.on("close", resolve));
    fresh.push(JSON.parse(out.trim()).ms);
  }
  const states = workers.reduce((m, w) => ((m[w.state] = (m[w.state] ?? 0) + 1), m), {});
  fresh.sort((a, b) => a - b);
  console.log(`\n### Connect mode at scale: ${N} connections in one process (default heartbeats)\n`);
  console.log(`| measure | value |\n|---|---:|`);
  console.log(`| connections held (states) | ${Object.entries(states).map(([k, v]) => `${v} ${k}`).join(", ")} |`);
  console.log(`| time to connect all (batches of ${BATCH}) | ${connectSeconds.toFixed(1)} s |`);
  console.log(`| parent RSS per connection | ${(((held.rss - baseline.rss) * 1024) / N).toFixed(1)} KiB (${baseline.rss.toFixed(0)} → ${held.rss.toFixed(0)} MiB) |`);
  console.log(`| file descriptors per connection | ${((held.fds - baseline.fds) / N).toFixed(2)} (${baseline.fds} → ${held.fds}) |`);
  console.log(`| a fresh parent process: connect() → first reply, 5 runs | ${fresh.map((ms) => ms.toFixed(1)).join(", ")} ms (median ${fresh[2].toFixed(1)}) |`);
} finally {
  const t = performance.now();
  await Promise.all(workers.map((w) => w.stop()));
  log(`stopped ${workers.length} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  service.kill("SIGTERM");
  await new Promise((resolve) => service.on("close", resolve));
  rmSync(registryDir, { recursive: true, force: true });
}
process.exit(0);
