// Spawn → first answered call, four subjects side by side in one run (interleaved, order
// rotating): the echo worker importing "multifrost" (the whole package), the same worker importing
// "multifrost/child" (the lean entry, a bundle: scripts/build-child.mjs), our parent with the raw
// zeromq + msgpackr child of bench/lib/raw-child.mjs, and the raw parent with the raw child.
// The parent is the library for the first three (spawn() + start() + add(1, 2); the third
// separates the parent's share); the raw parent for the last.
//
//   npm run build && node bench/lean-child.mjs [--rounds=N]     (default 30 per child)

import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { startRawPeer } from "./lib/raw-parent.mjs";
import { spawnOurWorker } from "./lib/our-peer.mjs";
import { median, percentile } from "./lib/measure.mjs";

const roundsArg = process.argv.slice(2).find((a) => a.startsWith("--rounds="));
const ROUNDS = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : 30;
const FULL = fileURLToPath(new URL("./workers/echo-worker-full.mjs", import.meta.url));
const LEAN = fileURLToPath(new URL("./workers/echo-worker.mjs", import.meta.url));
const RAW_CHILD = fileURLToPath(new URL("./lib/raw-child.mjs", import.meta.url));

async function ours(script) {
  const t0 = performance.now();
  const worker = spawnOurWorker(script);
  try {
    const handle = worker.handle();
    await handle.start();
    if ((await handle.call.add(1, 2)) !== 3) throw new Error("add(1, 2) != 3");
    return performance.now() - t0;
  } finally {
    await worker.stop();
  }
}

async function raw() {
  const t0 = performance.now();
  const peer = await startRawPeer(undefined, { ready: false });
  try {
    if ((await peer.call("add", [1, 2])) !== 3) throw new Error("add(1, 2) != 3");
    return performance.now() - t0;
  } finally {
    await peer.stop();
  }
}

// "ours→raw": our parent (spawn() + start() + add) with the raw child: what the parent side adds.
const subjects = { full: () => ours(FULL), lean: () => ours(LEAN), "ours→raw child": () => ours(RAW_CHILD), raw };
const names = Object.keys(subjects);
const started = { at: new Date(), load: loadavg() };
const times = Object.fromEntries(names.map((n) => [n, []]));
for (const name of names) await subjects[name](); // warm the file cache
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const name of order) times[name].push(await subjects[name]());
}
const sorted = (n) => Float64Array.from(times[n]).sort();
const p50 = (n) => median(sorted(n));
const load = (l) => l.map((x) => x.toFixed(2)).join(" ");
console.log(`spawn → first answered call, ${ROUNDS} per child, interleaved (ms); ${started.at.toISOString().slice(0, 16)}Z, node ${process.version}, load ${load(started.load)} → ${load(loadavg())}`);
console.log("| child | p50 | p90 | ratio p50 / raw |");
console.log("|---|---:|---:|---:|");
for (const name of names) {
  console.log(`| ${name} | ${p50(name).toFixed(1)} | ${percentile(sorted(name), 90).toFixed(1)} | ${(p50(name) / p50("raw")).toFixed(2)} |`);
}
process.exit(0);
