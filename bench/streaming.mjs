// Streaming vs calls: the same N values from one TS child (bench/workers/stream-worker.mjs),
// fetched three ways, side by side in one run:
//
//   stream:      for await (const v of handle.stream.count(N, bytes))   one call, N chunks under
//                credit-based flow control (16 ahead, a credit message per 8 taken)
//   sequential:  N × await handle.call.value(i, bytes)                  one call at a time
//   pipelined:   the same N calls, 100 in flight                        (fixedCountRate)
//
// Values are small integers, then 1 KiB Buffers. Each round measures every subject once per
// value kind, the order rotating between rounds so machine drift hits all alike; values/s per
// subject, ratios stream/sequential and stream/pipelined taken within the round, then the median
// over rounds (per-round ratios listed), as bench/metrics-cost.mjs does.
//
//   node bench/streaming.mjs [--quick] [--rounds=N]     (run `npm run build` first; npm run bench runs it)
import os from "node:os";
import { fileURLToPath } from "node:url";
import { fixedCountRate, formatTable, machineMeta, median } from "./lib/measure.mjs";
import { startOurPeer } from "./lib/our-peer.mjs";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const roundsArg = argv.find((a) => a.startsWith("--rounds="));
const ROUNDS = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : quick ? 2 : 5;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`bad ${roundsArg}`);
const N = quick ? 5_000 : 20_000;
const KINDS = [
  { name: "integers", bytes: 0 },
  { name: "1 KiB Buffers", bytes: 1024 },
];
const IN_FLIGHT = 100;
const STREAM_WORKER = fileURLToPath(new URL("./workers/stream-worker.mjs", import.meta.url));
const log = (msg) => process.stderr.write(`[bench:streaming] ${msg}\n`);

const meta = machineMeta();
const peer = await startOurPeer(STREAM_WORKER);
const handle = peer.worker.handle();

/** values/s of one stream of `n` values. */
async function streamRate(n, bytes) {
  const started = performance.now();
  let received = 0;
  for await (const _ of handle.stream.count(n, bytes)) received++;
  const ms = performance.now() - started;
  if (received !== n) throw new Error(`stream: ${received} values, expected ${n}`);
  return (n / ms) * 1000;
}

/** values/s of `n` calls, `inFlight` at a time. */
function callRate(n, bytes, inFlight) {
  let i = 0;
  return fixedCountRate(() => handle.call.value(i++, bytes), { calls: n, inFlight });
}

const SUBJECTS = {
  stream: (bytes) => streamRate(N, bytes),
  sequential: (bytes) => callRate(N, bytes, 1),
  pipelined: (bytes) => callRate(N, bytes, IN_FLIGHT),
};
const NAMES = Object.keys(SUBJECTS);

const rounds = [];
try {
  // Warm-up: JIT both paths before the first timed round.
  for (const { bytes } of KINDS) {
    await streamRate(Math.min(N, 2000), bytes);
    await callRate(Math.min(N, 2000), bytes, IN_FLIGHT);
    await callRate(500, bytes, 1);
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = NAMES.map((_, k) => NAMES[(k + round) % NAMES.length]);
    log(`round ${round + 1}/${ROUNDS} (${order.join(", ")})`);
    const rates = {};
    for (const { name, bytes } of KINDS) {
      rates[name] = {};
      for (const subject of order) rates[name][subject] = await SUBJECTS[subject](bytes);
    }
    rounds.push(rates);
  }
} finally {
  await peer.stop();
}

const m = (pick) => median(rounds.map(pick));
const per = (pick) => rounds.map((r) => pick(r).toFixed(2)).join(", ");
const int = (v) => Math.round(v).toLocaleString("en-US");
const rows = KINDS.map(({ name }) => ({
  what: `${N.toLocaleString("en-US")} ${name}`,
  stream: int(m((r) => r[name].stream)),
  sequential: int(m((r) => r[name].sequential)),
  pipelined: int(m((r) => r[name].pipelined)),
  vsSeq: m((r) => r[name].stream / r[name].sequential).toFixed(2),
  vsPipe: m((r) => r[name].stream / r[name].pipelined).toFixed(2),
  per: per((r) => r[name].stream / r[name].pipelined),
}));
console.log(`\n### Streaming vs calls: values/s from one TS child (${ROUNDS} rounds, order rotating)\n`);
const load = (values) => values.map((v) => v.toFixed(2)).join(" / ");
console.log(
  `${meta.date} · node ${meta.node} · ${meta.cpus} CPUs (${meta.cpuModel}) · load average ${load(meta.loadavgStart)} at start, ${load(os.loadavg())} at end (1/5/15 min)\n`,
);
console.log(
  formatTable(rows, [
    { key: "what", label: "values" },
    { key: "stream", label: "one stream", align: "right" },
    { key: "sequential", label: "calls, sequential", align: "right" },
    { key: "pipelined", label: `calls, ${IN_FLIGHT} in flight`, align: "right" },
    { key: "vsSeq", label: "stream/sequential", align: "right" },
    { key: "vsPipe", label: "stream/pipelined", align: "right" },
    { key: "per", label: "per-round stream/pipelined" },
  ]),
);
process.exit(0);
