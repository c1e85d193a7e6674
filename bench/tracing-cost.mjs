// What tracing costs per call: the same echo worker without tracing (no tracer provider, no
// channel subscriber: the default), with an OpenTelemetry tracing SDK registered before the worker
// was created (a BasicTracerProvider with a BatchSpanProcessor and a discarding exporter, the W3C
// propagator: a client span per call and `traceparent` in the call's metadata), and with a
// `multifrost:call` diagnostics_channel subscriber (no SDK) — side by side: sequential round trips
// in alternating slices (off vs sdk), calls/s at 100 in flight in alternating windows (off, sdk,
// channel), ratios to "off" within each round.
//
//   node bench/tracing-cost.mjs [--quick]      (run `npm run build` first)
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { tracingChannel } from "node:diagnostics_channel";
import { formatTable, median, pipelinedRate, sequentialLatencyInterleaved } from "./lib/measure.mjs";
import { startOurPeer } from "./lib/our-peer.mjs";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 2 : 5;
const log = (msg) => process.stderr.write(`[bench:tracing-cost] ${msg}\n`);

const off = await startOurPeer(undefined, {});
let exported = 0;
const exporter = { export: (spans, done) => { exported += spans.length; done({ code: 0 }); }, shutdown: async () => undefined };
const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 65_536, maxExportBatchSize: 4096, scheduledDelayMillis: 200 })] });
trace.setGlobalTracerProvider(provider);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const sdk = await startOurPeer(undefined, {}); // created after the SDK: its calls are spans
const channel = tracingChannel("multifrost:call");
const subscriber = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
const calls = { off: () => off.add(), sdk: () => sdk.add() };
const rounds = [];
try {
  for (let n = 0; n < ROUNDS; n++) {
    log(`round ${n + 1}/${ROUNDS}`);
    const order = n % 2 ? { sdk: calls.sdk, off: calls.off } : calls;
    const seq = await sequentialLatencyInterleaved(order, { warmup: quick ? 500 : 2000, iterations: quick ? 3000 : 10000 });
    const rates = { off: [], sdk: [], channel: [] };
    for (let s = 0; s < 4; s++) {
      for (const name of s % 2 ? ["channel", "sdk", "off"] : ["off", "sdk", "channel"]) {
        if (name === "channel") channel.subscribe(subscriber);
        try {
          rates[name].push(await pipelinedRate(name === "sdk" ? calls.sdk : calls.off, { inFlight: 100, windowMs: quick ? 300 : 500, warmupMs: 300 }));
        } finally {
          if (name === "channel") channel.unsubscribe(subscriber);
        }
      }
    }
    const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
    rounds.push({ seq, rate: { off: mean(rates.off), sdk: mean(rates.sdk), channel: mean(rates.channel) } });
  }
} finally {
  await Promise.allSettled([off.stop(), sdk.stop()]);
  await provider.shutdown();
}
log(`${exported} spans exported`);
const m = (pick) => median(rounds.map(pick));
const per = (pick) => rounds.map((r) => pick(r).toFixed(3)).join(", ");
const rows = [
  { what: "sequential p50 µs", off: m((r) => r.seq.off.p50).toFixed(1), sdk: m((r) => r.seq.sdk.p50).toFixed(1), channel: "", sdkRatio: m((r) => r.seq.sdk.p50 / r.seq.off.p50).toFixed(3), channelRatio: "", per: per((r) => r.seq.sdk.p50 / r.seq.off.p50) },
  { what: "calls/s, 100 in flight", off: m((r) => r.rate.off).toFixed(0), sdk: m((r) => r.rate.sdk).toFixed(0), channel: m((r) => r.rate.channel).toFixed(0), sdkRatio: m((r) => r.rate.sdk / r.rate.off).toFixed(3), channelRatio: m((r) => r.rate.channel / r.rate.off).toFixed(3), per: per((r) => r.rate.sdk / r.rate.off) },
];
console.log(`\n### Tracing cost: off (default) vs an OpenTelemetry tracing SDK vs a multifrost:call subscriber (${ROUNDS} rounds, alternating)\n`);
console.log(
  formatTable(rows, [
    { key: "what", label: "" },
    { key: "off", label: "off", align: "right" },
    { key: "sdk", label: "tracing SDK", align: "right" },
    { key: "channel", label: "channel subscriber", align: "right" },
    { key: "sdkRatio", label: "sdk/off", align: "right" },
    { key: "channelRatio", label: "channel/off", align: "right" },
    { key: "per", label: "per-round sdk/off" },
  ]),
);
process.exit(0);
