// What the private spawn channel costs or gains per call (issue 10): our echo worker connected to
// its parent over the private ipc:// endpoint (the default) vs over TCP (as a v4 child does, with
// the ZAP peer check), side by side in one run: sequential round trips in alternating slices, and
// calls/s at 100 in flight in alternating windows, per round; ratios ipc/tcp within each round.
//
//   node bench/spawn-channel.mjs [--quick]      (run `npm run build` first; npm run bench runs it)
import { fileURLToPath } from "node:url";
import { median, pipelinedRate, sequentialLatencyInterleaved, formatTable } from "./lib/measure.mjs";
import { startOurPeer } from "./lib/our-peer.mjs";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 2 : 5;
const TCP_WORKER = fileURLToPath(new URL("./workers/echo-worker-tcp.mjs", import.meta.url));
const log = (msg) => process.stderr.write(`[bench:spawn-channel] ${msg}\n`);

async function round(n) {
  const ipc = await startOurPeer();
  const tcp = await startOurPeer(TCP_WORKER);
  try {
    const calls = { ipc: () => ipc.add(), tcp: () => tcp.add() };
    const seq = await sequentialLatencyInterleaved(n % 2 ? { tcp: calls.tcp, ipc: calls.ipc } : calls, {
      warmup: quick ? 500 : 2000,
      iterations: quick ? 2000 : 10000,
    });
    const rates = { ipc: [], tcp: [] };
    for (let s = 0; s < 4; s++) {
      for (const name of s % 2 ? ["tcp", "ipc"] : ["ipc", "tcp"]) {
        rates[name].push(await pipelinedRate(calls[name], { inFlight: 100, windowMs: quick ? 300 : 500, warmupMs: 300 }));
      }
    }
    const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
    return { seq, rate: { ipc: mean(rates.ipc), tcp: mean(rates.tcp) } };
  } finally {
    await Promise.allSettled([ipc.stop(), tcp.stop()]);
  }
}

const rounds = [];
for (let n = 0; n < ROUNDS; n++) {
  log(`round ${n + 1}/${ROUNDS}`);
  rounds.push(await round(n));
}
const m = (pick) => median(rounds.map(pick));
const rows = [
  { what: "sequential p50 µs", ipc: m((r) => r.seq.ipc.p50).toFixed(1), tcp: m((r) => r.seq.tcp.p50).toFixed(1), ratio: m((r) => r.seq.ipc.p50 / r.seq.tcp.p50).toFixed(3), per: rounds.map((r) => (r.seq.ipc.p50 / r.seq.tcp.p50).toFixed(2)).join(", ") },
  { what: "sequential p99 µs", ipc: m((r) => r.seq.ipc.p99).toFixed(1), tcp: m((r) => r.seq.tcp.p99).toFixed(1), ratio: m((r) => r.seq.ipc.p99 / r.seq.tcp.p99).toFixed(3), per: rounds.map((r) => (r.seq.ipc.p99 / r.seq.tcp.p99).toFixed(2)).join(", ") },
  { what: "calls/s, 100 in flight", ipc: m((r) => r.rate.ipc).toFixed(0), tcp: m((r) => r.rate.tcp).toFixed(0), ratio: m((r) => r.rate.ipc / r.rate.tcp).toFixed(3), per: rounds.map((r) => (r.rate.ipc / r.rate.tcp).toFixed(2)).join(", ") },
];
console.log(`\n### Spawn channel: private ipc:// vs TCP (${ROUNDS} rounds, alternating)\n`);
console.log(
  formatTable(rows, [
    { key: "what", label: "" },
    { key: "ipc", label: "ipc (private, default)", align: "right" },
    { key: "tcp", label: "tcp (v4 children)", align: "right" },
    { key: "ratio", label: "ipc/tcp", align: "right" },
    { key: "per", label: "per-round ipc/tcp" },
  ]),
);
process.exit(0);
