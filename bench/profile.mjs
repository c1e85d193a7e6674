// CPU-profile one pairing at 100 in flight (npm run build first):
//   node --cpu-prof --cpu-prof-dir=DIR bench/profile.mjs [--pair=ours|raw] [--calls=60000] [--child-prof=DIR]
// The child is profiled too when --child-prof is given (through bench/lib/profiled-child.mjs).
// --pids=FILE writes the parent and child pids after warm-up (for perf stat -p).
import { fileURLToPath } from "node:url";
import { ECHO_WORKER, startOurPeer } from "./lib/our-peer.mjs";
import { join } from "node:path";
import { startRawPeer } from "./lib/raw-parent.mjs";
import { fixedCountRate } from "./lib/measure.mjs";

const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback;
const PAIR = arg("pair", "ours");
const CALLS = Number(arg("calls", 60_000));
const CHILD_PROF = arg("child-prof", undefined);
const IN_FLIGHT = Number(arg("inflight", 100));
const RAW_CHILD = fileURLToPath(new URL("./lib/raw-child.mjs", import.meta.url));
const WRAPPER = fileURLToPath(new URL("./lib/profiled-child.mjs", import.meta.url));
const child = PAIR === "raw" ? RAW_CHILD : ECHO_WORKER;
if (CHILD_PROF) Object.assign(process.env, { MF_PROF_TARGET: child, MF_PROF_DIR: CHILD_PROF });
const script = CHILD_PROF ? WRAPPER : child;

let pair;
if (PAIR === "raw") {
  const peer = await startRawPeer(script);
  pair = { add: () => peer.call("add", [1, 2]), stop: () => peer.stop(), pid: peer.pid };
} else if (process.env.MF_DIST) {
  // Another build of the library (a copy of dist/ holding an echo-worker.mjs), for A/B runs.
  const { ParentWorker } = await import(join(process.env.MF_DIST, "index.js"));
  if (CHILD_PROF) process.env.MF_PROF_TARGET = join(process.env.MF_DIST, "echo-worker.mjs");
  const worker = ParentWorker.spawn(CHILD_PROF ? WRAPPER : join(process.env.MF_DIST, "echo-worker.mjs"), "node", { onOutput() {} });
  await worker.start();
  const handle = worker.handle();
  pair = { add: () => handle.call.add(1, 2), stop: () => worker.stop(), pid: worker.pid };
} else {
  pair = await startOurPeer(script);
}
for (let i = 0; i < 5000; i++) await pair.add();
if (arg("pids", undefined)) {
  const { writeFileSync } = await import("node:fs");
  writeFileSync(arg("pids"), `${process.pid} ${pair.pid ?? ""}\n`);
}
let completed = 0;
const tick = setInterval(() => process.stderr.write(`completed ${completed}\n`), 1000);
const rate = await fixedCountRate(pair.add, { calls: CALLS, inFlight: IN_FLIGHT, onDone: () => completed++ });
clearInterval(tick);
await pair.stop();
console.log(`${PAIR}: ${Math.round(rate)} calls/s`);
