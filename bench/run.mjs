// Multifrost vs the raw zeromq floor, side by side, in one run.
//
//   npm run bench                 (= npm run build && node bench/run.mjs; 5 rounds, ~3-5 min)
//   npm run bench -- --quick      (2 rounds, short iterations/windows, well under a minute)
//   node bench/run.mjs [--quick] [--rounds=N] [--no-supervision]
//
// Then, unless --no-supervision, it runs bench/supervision.mjs (supervised vs bare worker, parent
// memory per worker, a 50-worker fleet), bench/restart-latency.mjs (restart-decision latency,
// supervised vs self-restarting), and the other side benches (spawn channel, connect scale,
// metrics and tracing cost, streaming vs calls, and across hosts — two network namespaces, which
// needs root: skipped with a message otherwise) in fresh processes with the same arguments; their
// reports follow.
//
// "ours": ParentWorker.spawn(bench/workers/echo-worker.mjs) + worker.handle().call.add(1, 2)
//         against a ChildWorker subclass.
// "raw":  startRawPeer() from bench/lib/raw-parent.mjs: a hand-written DEALER/ROUTER +
//         msgpackr comlink_ipc_v4 echo between two processes, no library code.
//
// Every round starts a fresh pair (ours + raw) and runs each measurement for both, one after the
// other (the order alternates between rounds), so machine drift hits both alike. Pipelined rates
// are finer still: each subject's window is cut into slices run ours/raw/ours/raw... and the
// rate is the mean over its slices (equal windows, so = completions / total window). Ratios
// ours/raw are taken within a round, then the median over rounds is reported (as PERF-FLOOR.md
// does). Cold starts are interleaved ours/raw too. Prints a Markdown report on stdout and writes
// the raw data to bench/results/latest.json.

import os from "node:os";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { startRawPeer } from "./lib/raw-parent.mjs";
import { startOurPeer, spawnOurWorker } from "./lib/our-peer.mjs";
import { sequentialLatency, sequentialLatencyInterleaved, pipelinedRate, interleaved, median, ratio, percentile, formatTable, startRunRecord } from "./lib/measure.mjs";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const roundsArg = argv.find((a) => a.startsWith("--rounds="));

const CONFIG = quick
  ? {
      rounds: 2,
      seq: { warmup: 300, iterations: 2000, slices: 4 },
      pipe: { slices: 2, windowMs: 250, warmupMs: 150 },
      big: { warmup: 10, iterations: 60 },
      coldPerRound: 2,
    }
  : {
      rounds: 5,
      seq: { warmup: 2000, iterations: 10000, slices: 10 },
      pipe: { slices: 4, windowMs: 500, warmupMs: 300 },
      big: { warmup: 30, iterations: 300 },
      coldPerRound: 5,
    };
if (roundsArg) {
  const n = Number(roundsArg.slice("--rounds=".length));
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad ${roundsArg}`);
  CONFIG.rounds = n;
}
const IN_FLIGHT = [1, 10, 100, 1000];
const BIG_BYTES = 1 << 20;
const TARGETS = { seqP50Ratio: 1.05, pipe100Ratio: 1.0, coldMs: 250 };
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));

// Ctrl-C / kill: exit; the 'exit' hooks of raw-parent.mjs and the library's process actor
// SIGKILL the process group of every child still alive.
for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => process.exit(130));

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// measurements

const STARTERS = {
  ours: () => startOurPeer(),
  raw: async () => {
    const peer = await startRawPeer();
    return { ...peer, add: () => peer.call("add", [1, 2]), echo: (x) => peer.call("echo", [x]) };
  },
};

/** ours: spawn() + start() + first add answered. */
async function coldOurs() {
  const t0 = performance.now();
  const worker = spawnOurWorker();
  try {
    const handle = worker.handle();
    await handle.start();
    const result = await handle.call.add(1, 2);
    const ms = performance.now() - t0;
    if (result !== 3) throw new Error(`cold start (ours): add(1, 2) returned ${result}`);
    return ms;
  } finally {
    await worker.stop();
  }
}

/** raw: bind + spawn raw-child + first add answered (queued in the DEALER until the child connects). */
async function coldRaw() {
  const t0 = performance.now();
  const peer = await startRawPeer(undefined, { ready: false });
  try {
    const result = await peer.call("add", [1, 2]);
    const ms = performance.now() - t0;
    if (result !== 3) throw new Error(`cold start (raw): add(1, 2) returned ${result}`);
    return ms;
  } finally {
    await peer.stop();
  }
}

async function sanityCheck(name, peer, big) {
  const sum = await peer.add();
  const echoed = await peer.echo("hi");
  const bigBack = await peer.echo(big);
  if (sum !== 3 || echoed !== "hi" || !(bigBack instanceof Uint8Array) || bigBack.length !== big.length || bigBack[12345] !== big[12345]) {
    throw new Error(`${name}: sanity check failed (add → ${sum}, echo → ${echoed}, echo(1 MiB) → ${bigBack?.length} bytes)`);
  }
}

/** Subjects in this round's order: ours first on even rounds, raw first on odd ones. */
function ordered(round, byName) {
  const names = round % 2 === 0 ? ["ours", "raw"] : ["raw", "ours"];
  return Object.fromEntries(names.map((n) => [n, byName[n]]));
}

async function runRound(round, big) {
  const order = round % 2 === 0 ? ["ours", "raw"] : ["raw", "ours"];
  const out = { round, order, loadavg: os.loadavg(), seq: {}, pipelined: {}, pipelinedSlices: {}, echo1MiB: {}, cold: {} };
  const peers = {};
  try {
    for (const name of order) peers[name] = await STARTERS[name]();
    for (const name of order) await sanityCheck(name, peers[name], big);
    const subjects = ordered(round, peers);

    log(`round ${round + 1}: sequential add(1, 2)`);
    const seq = await sequentialLatencyInterleaved(Object.fromEntries(order.map((n) => [n, subjects[n].add])), CONFIG.seq);
    for (const name of order) out.seq[name] = seq[name];

    for (const inFlight of IN_FLIGHT) {
      log(`round ${round + 1}: pipelined, ${inFlight} in flight`);
      const { slices, windowMs, warmupMs } = CONFIG.pipe;
      const r = await interleaved(slices, subjects, (p) => pipelinedRate(p.add, { inFlight, windowMs, warmupMs }));
      out.pipelinedSlices[inFlight] = r;
      out.pipelined[inFlight] = Object.fromEntries(order.map((n) => [n, r[n].reduce((a, b) => a + b, 0) / r[n].length]));
    }

    log(`round ${round + 1}: sequential echo(1 MiB Buffer)`);
    const e = await interleaved(1, subjects, (p) => sequentialLatency(() => p.echo(big), CONFIG.big));
    for (const name of order) out.echo1MiB[name] = e[name][0];
  } finally {
    // stop() never rejects in either implementation, but one failing must not leave the other running
    await Promise.allSettled(Object.values(peers).map((p) => p.stop()));
  }

  log(`round ${round + 1}: ${CONFIG.coldPerRound} cold starts each`);
  const cold = await interleaved(CONFIG.coldPerRound, ordered(round, { ours: coldOurs, raw: coldRaw }), (fn) => fn());
  for (const name of order) out.cold[name] = cold[name];
  return out;
}

// ---------------------------------------------------------------------------------------------
// summary

function stat(values) {
  const finite = values.filter(Number.isFinite);
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), values };
}

function summarize(rounds) {
  const per = (get) => ({ ours: stat(rounds.map((r) => get(r, "ours"))), raw: stat(rounds.map((r) => get(r, "raw"))) });
  const ratios = (get) => stat(rounds.map((r) => ratio(get(r, "ours"), get(r, "raw"))));
  const metric = (get) => ({ ...per(get), ratio: ratios(get) });

  const seq = {
    p50: metric((r, n) => r.seq[n].p50),
    p99: metric((r, n) => r.seq[n].p99),
    mean: metric((r, n) => r.seq[n].mean),
  };
  const pipelined = Object.fromEntries(IN_FLIGHT.map((k) => [k, metric((r, n) => r.pipelined[k][n])]));
  const echo1MiB = {
    p50: metric((r, n) => r.echo1MiB[n].p50),
    p99: metric((r, n) => r.echo1MiB[n].p99),
  };
  const allCold = (n) => Float64Array.from(rounds.flatMap((r) => r.cold[n])).sort();
  const coldStats = (n) => {
    const s = allCold(n);
    return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), min: s[0], max: s[s.length - 1] };
  };
  const cold = {
    ours: coldStats("ours"),
    raw: coldStats("raw"),
    ratioP50: ratios((r, n) => median(r.cold[n])),
  };
  const targets = {
    seqP50: { target: `ours/raw ≤ ${TARGETS.seqP50Ratio}`, value: seq.p50.ratio.median, met: seq.p50.ratio.median <= TARGETS.seqP50Ratio },
    pipe100: { target: `ours/raw ≥ ${TARGETS.pipe100Ratio}`, value: pipelined[100].ratio.median, met: pipelined[100].ratio.median >= TARGETS.pipe100Ratio },
    cold: { target: `ours p50 ≤ ${TARGETS.coldMs} ms`, value: cold.ours.p50, met: cold.ours.p50 <= TARGETS.coldMs },
  };
  return { seq, pipelined, echo1MiB, cold, targets };
}

// ---------------------------------------------------------------------------------------------
// report

const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : "-");
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : "-");
const int = (v) => (Number.isFinite(v) ? String(Math.round(v)) : "-");
const withRange = (fmt) => (s) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
const list = (fmt) => (s) => s.values.map(fmt).join(", ");
/** Columns of an ours-vs-raw table whose cells are in `unit`, formatted by `fmt`. */
const comparisonColumns = (unit, fmt) => [
  { key: "m", label: "" },
  { key: "ours", label: `ours ${unit}`, format: withRange(fmt), align: "right" },
  { key: "raw", label: `raw ${unit}`, format: withRange(fmt), align: "right" },
  { key: "ratio", label: "ours/raw", format: (s) => f2(s.median), align: "right" },
  { key: "ratio", label: "per-round ratios", format: list(f2) },
  { key: "target", label: "target" },
];
const yesNo = (b) => (b ? "**met**" : "**not met**");

function report(meta, summary) {
  const { seq, pipelined, echo1MiB, cold, targets } = summary;
  const lines = [];
  lines.push(`# Multifrost vs raw zeromq floor${quick ? " (--quick)" : ""}`);
  lines.push("");
  lines.push(
    `${meta.date} · node ${meta.node} · ${meta.cpus} CPUs (${meta.cpuModel}) · load average ` +
      `${meta.loadavgStart.map(f2).join(" / ")} at start, ${meta.loadavgEnd.map(f2).join(" / ")} at end (1/5/15 min) · ` +
      `${meta.rounds} interleaved rounds · wall ${f1(meta.wallSeconds)} s`,
  );
  lines.push("");
  lines.push(`1-min load average at the start of each round: ${meta.roundLoad.map(f2).join(", ")}.`);
  lines.push("");
  lines.push(
    `Cells: median over rounds (min–max). Ratio = ours/raw computed within each round, then the median ` +
      `(per-round ratios listed). Sequential: ${CONFIG.seq.warmup} warm-up + ${CONFIG.seq.iterations} timed calls in ${CONFIG.seq.slices} alternating slices per subject; ` +
      `pipelined: ${CONFIG.pipe.slices} alternating slices × ${CONFIG.pipe.windowMs} ms window (each after ≥${CONFIG.pipe.warmupMs} ms warm-up) per subject; ` +
      `1 MiB echo: ${CONFIG.big.warmup} + ${CONFIG.big.iterations}; cold starts: ${CONFIG.coldPerRound} per side per round.`,
  );
  lines.push("");

  lines.push("## Sequential round trip, `add(1, 2)` (µs)");
  lines.push("");
  lines.push(
    formatTable(
      [
        { m: "p50", ...seq.p50, target: `≤ ${TARGETS.seqP50Ratio}×: ${yesNo(targets.seqP50.met)}` },
        { m: "p99", ...seq.p99, target: "" },
        { m: "mean", ...seq.mean, target: "" },
      ],
      comparisonColumns("µs", f1),
    ),
  );
  lines.push("");

  lines.push("## Pipelined `add(1, 2)`, calls/s");
  lines.push("");
  lines.push(
    formatTable(
      IN_FLIGHT.map((k) => ({
        m: `${k} in flight`,
        ...pipelined[k],
        target: k === 100 ? `≥ ${TARGETS.pipe100Ratio}×: ${yesNo(targets.pipe100.met)}` : "",
      })),
      comparisonColumns("/s", int),
    ),
  );
  lines.push("");

  lines.push("## Spawn → first answered call, node worker (ms)");
  lines.push("");
  lines.push(
    formatTable(
      [
        { m: "ours: `spawn()` + `start()` + first `add`", ...cold.ours, target: `p50 ≤ ${TARGETS.coldMs} ms: ${yesNo(targets.cold.met)}` },
        { m: "raw: bind + spawn + first `add`", ...cold.raw, target: "" },
      ],
      [
        { key: "m", label: "" },
        { key: "n", label: "n", align: "right" },
        { key: "p50", label: "p50", format: f1, align: "right" },
        { key: "p90", label: "p90", format: f1, align: "right" },
        { key: "min", label: "min", format: f1, align: "right" },
        { key: "max", label: "max", format: f1, align: "right" },
        { key: "target", label: "target" },
      ],
    ),
  );
  lines.push("");
  lines.push(
    `Per-round ratio of medians ours/raw: ${f2(cold.ratioP50.median)} (per round: ${list(f2)(cold.ratioP50)}).`,
  );
  lines.push("");

  lines.push("## Sequential `echo(1 MiB Buffer)` (µs, informative)");
  lines.push("");
  lines.push(
    formatTable(
      [
        { m: "p50", ...echo1MiB.p50 },
        { m: "p99", ...echo1MiB.p99 },
      ],
      [
        { key: "m", label: "" },
        { key: "ours", label: "ours µs", format: withRange(int), align: "right" },
        { key: "raw", label: "raw µs", format: withRange(int), align: "right" },
        { key: "ratio", label: "ours/raw", format: (s) => f2(s.median), align: "right" },
        { key: "ratio", label: "per-round ratios", format: list(f2) },
      ],
    ),
  );
  lines.push("");

  lines.push("## Targets");
  lines.push("");
  lines.push(
    formatTable(
      [
        { m: "sequential p50", t: targets.seqP50.target, v: f2(targets.seqP50.value), met: targets.seqP50.met },
        { m: "pipelined, 100 in flight", t: targets.pipe100.target, v: f2(targets.pipe100.value), met: targets.pipe100.met },
        { m: "spawn → first call", t: targets.cold.target, v: `${f1(targets.cold.value)} ms`, met: targets.cold.met },
      ],
      [
        { key: "m", label: "measure" },
        { key: "t", label: "target" },
        { key: "v", label: "measured", align: "right" },
        { key: "met", label: "", format: yesNo },
      ],
    ),
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { meta, finish } = startRunRecord({ quick, rounds: CONFIG.rounds });
  log(`${quick ? "quick" : "full"} run, ${CONFIG.rounds} rounds, load ${meta.loadavgStart.map(f2).join(" ")}`);

  const big = Buffer.alloc(BIG_BYTES);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;

  const rounds = [];
  for (let round = 0; round < CONFIG.rounds; round++) rounds.push(await runRound(round, big));

  const summary = summarize(rounds);
  const file = finish(`${RESULTS_DIR}latest.json`, rounds.map((r) => r.loadavg[0]), {
    config: { ...CONFIG, inFlight: IN_FLIGHT, bigBytes: BIG_BYTES, targets: TARGETS },
    rounds,
    summary,
  });

  console.log(report(meta, summary));
  log(`raw data: ${file}`);

  if (!argv.includes("--no-supervision")) {
    for (const script of ["./supervision.mjs", "./restart-latency.mjs", "./spawn-channel.mjs", "./connect-scale.mjs", "./metrics-cost.mjs", "./tracing-cost.mjs", "./streaming.mjs", "./multihost.mjs"]) {
      console.log("");
      const code = await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...argv], { stdio: "inherit" });
        child.once("error", reject);
        child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
      });
      if (code !== 0) throw new Error(`bench/${script.slice(2)} exited with ${code}`);
    }
  }
}

main().then(
  () => {
    // Everything is stopped; the process should now exit on its own. If some handle still holds
    // the event loop, say which and exit anyway (the timer is unref'd, so it never delays a clean exit).
    setTimeout(() => {
      log(`lingering handles after the run: ${process.getActiveResourcesInfo().join(", ")}`);
      process.exit(0);
    }, 5000).unref();
  },
  (err) => {
    console.error(err?.stack ?? err);
    process.exit(1); // the 'exit' hooks SIGKILL every child still alive
  },
);
