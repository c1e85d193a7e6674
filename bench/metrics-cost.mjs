// What metrics cost per call: the same echo worker with metrics on (the default: counters and the
// fixed-memory histogram; OpenTelemetry instruments are no-ops without an SDK), off
// (`metrics: false`), and on with an OpenTelemetry metrics SDK registered (a MeterProvider with a
// periodic reader) — side by side: sequential round trips in alternating slices, calls/s at 100 in
// flight in alternating windows, ratios to "off" within each round.
//
//   node bench/metrics-cost.mjs [--quick]      (run `npm run build` first; npm run bench runs it)
import { metrics } from "@opentelemetry/api";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { formatTable, median, pipelinedRate, sequentialLatencyInterleaved } from "./lib/measure.mjs";
import { startOurPeer } from "./lib/our-peer.mjs";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 2 : 5;
const log = (msg) => process.stderr.write(`[bench:metrics-cost] ${msg}\n`);

const on = await startOurPeer(undefined, {});
const off = await startOurPeer(undefined, { metrics: false });
const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 1000 });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
const sdk = await startOurPeer(undefined, {}); // created after the SDK: its instruments record
const calls = { off: () => off.add(), on: () => on.add(), sdk: () => sdk.add() };
const rounds = [];
try {
  for (let n = 0; n < ROUNDS; n++) {
    log(`round ${n + 1}/${ROUNDS}`);
    const order = n % 2 ? { sdk: calls.sdk, on: calls.on, off: calls.off } : calls;
    const seq = await sequentialLatencyInterleaved(order, { warmup: quick ? 500 : 2000, iterations: quick ? 3000 : 10000 });
    const rates = { off: [], on: [], sdk: [] };
    for (let s = 0; s < 4; s++) {
      for (const name of s % 2 ? ["sdk", "on", "off"] : ["off", "on", "sdk"]) {
        rates[name].push(await pipelinedRate(calls[name], { inFlight: 100, windowMs: quick ? 300 : 500, warmupMs: 300 }));
      }
    }
    const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
    rounds.push({ seq, rate: { off: mean(rates.off), on: mean(rates.on), sdk: mean(rates.sdk) } });
  }
} finally {
  await Promise.allSettled([on.stop(), off.stop(), sdk.stop()]);
  await reader.shutdown();
}
const m = (pick) => median(rounds.map(pick));
const per = (pick) => rounds.map((r) => pick(r).toFixed(3)).join(", ");
const rows = [
  { what: "sequential p50 µs", off: m((r) => r.seq.off.p50).toFixed(1), on: m((r) => r.seq.on.p50).toFixed(1), sdk: m((r) => r.seq.sdk.p50).toFixed(1), onRatio: m((r) => r.seq.on.p50 / r.seq.off.p50).toFixed(3), sdkRatio: m((r) => r.seq.sdk.p50 / r.seq.off.p50).toFixed(3), per: per((r) => r.seq.on.p50 / r.seq.off.p50) },
  { what: "calls/s, 100 in flight", off: m((r) => r.rate.off).toFixed(0), on: m((r) => r.rate.on).toFixed(0), sdk: m((r) => r.rate.sdk).toFixed(0), onRatio: m((r) => r.rate.on / r.rate.off).toFixed(3), sdkRatio: m((r) => r.rate.sdk / r.rate.off).toFixed(3), per: per((r) => r.rate.on / r.rate.off) },
];
console.log(`\n### Metrics cost: on (default) vs off vs on with an OpenTelemetry SDK (${ROUNDS} rounds, alternating)\n`);
console.log(
  formatTable(rows, [
    { key: "what", label: "" },
    { key: "off", label: "off", align: "right" },
    { key: "on", label: "on (default)", align: "right" },
    { key: "sdk", label: "on + OTel SDK", align: "right" },
    { key: "onRatio", label: "on/off", align: "right" },
    { key: "sdkRatio", label: "sdk/off", align: "right" },
    { key: "per", label: "per-round on/off" },
  ]),
);
process.exit(0);
