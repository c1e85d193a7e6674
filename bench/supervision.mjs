// Supervision benchmarks (issue 4): what a supervision tree costs over a bare ParentWorker.
//
//   npm run bench                       (run.mjs, then this file; --quick is passed on)
//   node bench/supervision.mjs [--quick] [--rounds=N]     (run `npm run build` first)
//
// 1. Call overhead. The same worker script (bench/workers/echo-worker.mjs), default heartbeat
//    settings on both sides, so only supervision differs:
//      bare:           ParentWorker.spawn(ECHO_WORKER).handle(), calls as handle.call.echo(x)
//      supervised:     supervise({ children: [worker({ id: "echo", spawn: ECHO_WORKER })] }),
//                      calls as tree.get("echo").call.echo(x)  (the lookup is made on every call)
//      supervised, held handle: h = tree.get("echo") once, calls as h.call.echo(x)
//    Every round starts a fresh bare worker and a fresh tree. Sequential round trips are timed in
//    slices that alternate between the three subjects (bare, supervised, held, bare, ...; the
//    order is reversed on odd rounds); a subject's p50/p99 for the round is taken over all its
//    slices. Calls/s at 100 in flight: alternating slices of a fixed window, mean over slices.
//    Ratios supervised/bare are taken within each round; the report gives their median.
// 2. Parent memory per idle worker. A fresh `node --expose-gc` probe process per measurement:
//    it starts and stops one worker (so the zeromq context, its I/O threads and the JIT-compiled
//    code exist before the baseline), gc(), measures RSS/heap (0 workers), starts N workers
//    (supervised: a tree with N worker children; bare: N ParentWorker.spawn), answers one call
//    on each, lets them sit idle (heartbeats running), gc(), measures again. Per worker =
//    (with N − with 0) / N. Supervised and bare probes alternate.
// 3. A fleet of 50 supervised workers on this 2-core machine: time to `tree.start()` (all ready),
//    time to `tree.stop()`, then every descendant process of this one is counted (/proc) and
//    every worker pid is checked gone: PASS or FAIL. Done for a pool of size 50 and for a
//    supervisor with 50 worker children, alternating.
//
// Prints a Markdown report on stdout, progress on stderr, and writes the raw data to
// bench/results/supervision-latest.json.

import os from "node:os";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { ParentWorker, supervise, worker, pool } from "../dist/index.js";
import { ECHO_WORKER } from "./lib/our-peer.mjs";
import { median, ratio, percentile, pipelinedRate, formatTable, startRunRecord } from "./lib/measure.mjs";

const SELF = fileURLToPath(import.meta.url);
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const roundsArg = argv.find((a) => a.startsWith("--rounds="));
const probeArg = argv.find((a) => a.startsWith("--memory-probe="));

const CONFIG = quick
  ? {
      rounds: 2,
      seq: { warmup: 300, slices: 2, perSlice: 1000 },
      pipe: { inFlight: 100, slices: 2, windowMs: 250, warmupMs: 150 },
      memory: { rounds: 1, workers: 20, idleMs: 1000 },
      fleet: { rounds: 1, size: 50 },
    }
  : {
      rounds: 5,
      seq: { warmup: 2000, slices: 5, perSlice: 2000 },
      pipe: { inFlight: 100, slices: 4, windowMs: 500, warmupMs: 300 },
      memory: { rounds: 3, workers: 20, idleMs: 6000 },
      fleet: { rounds: 2, size: 50 },
    };
if (roundsArg) {
  const n = Number(roundsArg.slice("--rounds=".length));
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad ${roundsArg}`);
  CONFIG.rounds = n;
}
const TARGET_RATIO = 1.05; // supervised/bare round trip: the supervised call costs ≤ 5% more
const PAYLOAD = "ping";
const LOOKUPS = quick ? 20_000 : 200_000;

const log = (msg) => process.stderr.write(`[bench:supervision] ${msg}\n`);
/** Child output goes to stderr, so it never mixes into the report on stdout. */
const onOutput = (stream, line, name) => process.stderr.write(`[${name} ${stream}] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// helpers

/** `count` sequential calls, each timed alone, appended to `into` (µs). */
async function timeCalls(callOnce, count, into) {
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await callOnce();
    into.push((performance.now() - t0) * 1000);
  }
}

function latencyStats(samples) {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean: sum / sorted.length, n: sorted.length };
}

/**
 * CPU cost of producing the function to call, no call sent: µs per `get()` (median of 5 runs
 * of `count`). This is all that `tree.get(id).call.echo(x)` adds over `handle.call.echo(x)`.
 */
function lookupCost(get, count) {
  const runs = [];
  let sink;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) sink = get();
    runs.push(((performance.now() - t0) * 1000) / count);
  }
  if (typeof sink !== "function") throw new Error("lookup did not give a function");
  return median(runs);
}

/** pid → { ppid, state } for every process, from /proc (Linux) or `ps` elsewhere. */
function processTable() {
  const table = new Map();
  if (existsSync("/proc/self/stat")) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue; // exited meanwhile
      }
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(entry), { ppid: Number(fields[1]), state: fields[0] });
    }
    return table;
  }
  const ps = spawnSync("ps", ["-A", "-o", "pid=,ppid=,stat="], { encoding: "utf8" });
  for (const line of ps.stdout.split("\n")) {
    const [pid, ppid, state] = line.trim().split(/\s+/);
    if (pid && Number(pid) !== ps.pid) table.set(Number(pid), { ppid: Number(ppid), state });
  }
  return table;
}

/** Every descendant of `root` (children, grandchildren, ...), zombies included. */
function descendants(root = process.pid) {
  const table = processTable();
  const byParent = new Map();
  for (const [pid, { ppid }] of table) {
    if (!byParent.has(ppid)) byParent.set(ppid, []);
    byParent.get(ppid).push(pid);
  }
  const out = [];
  const todo = [root];
  while (todo.length > 0) {
    for (const child of byParent.get(todo.pop()) ?? []) {
      out.push({ pid: child, state: table.get(child).state });
      todo.push(child);
    }
  }
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

async function gcAndMeasure() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await sleep(50);
  }
  const m = process.memoryUsage();
  // native: what RSS holds outside the V8 heap (zeromq sockets, libuv handles, pipes, malloc)
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, native: m.rss - m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

function oneWorkerTree(id, count = 1) {
  return supervise({
    id,
    children: Array.from({ length: count }, (_, i) => worker({ id: count === 1 ? "echo" : `echo-${i + 1}`, spawn: ECHO_WORKER, onOutput })),
  });
}

// ---------------------------------------------------------------------------------------------
// 1. call overhead

async function startSubjects(round) {
  const order = round % 2 === 0 ? ["bare", "tree"] : ["tree", "bare"];
  const started = {};
  try {
    for (const which of order) {
      if (which === "bare") {
        const bare = ParentWorker.spawn(ECHO_WORKER, "node", { onOutput });
        started.bare = bare;
        await bare.handle().start();
      } else {
        const tree = oneWorkerTree("bench");
        started.tree = tree;
        await tree.start();
      }
    }
  } catch (err) {
    await Promise.allSettled([started.bare?.stop(), started.tree?.stop()]);
    throw err;
  }
  return started;
}

async function runCallRound(round) {
  const { bare, tree } = await startSubjects(round);
  const out = { round, loadavg: os.loadavg(), order: [], seq: {}, pipelined: {}, pipelinedSlices: {} };
  try {
    const bareHandle = bare.handle();
    const held = tree.get("echo");
    const calls = {
      bare: () => bareHandle.call.echo(PAYLOAD),
      supervised: () => tree.get("echo").call.echo(PAYLOAD),
      held: () => held.call.echo(PAYLOAD),
    };
    const order = round % 2 === 0 ? ["bare", "supervised", "held"] : ["held", "supervised", "bare"];
    out.order = order;
    for (const name of order) {
      const back = await calls[name]();
      if (back !== PAYLOAD) throw new Error(`${name}: echo(${PAYLOAD}) returned ${back}`);
    }
    if (tree.worker("echo").pid === bare.pid) throw new Error("the two subjects share a process");

    log(`round ${round + 1}: sequential echo, ${CONFIG.seq.slices} slices × ${CONFIG.seq.perSlice} per subject`);
    for (const name of order) for (let i = 0; i < CONFIG.seq.warmup; i++) await calls[name]();
    const samples = Object.fromEntries(order.map((n) => [n, []]));
    for (let s = 0; s < CONFIG.seq.slices; s++) {
      for (const name of order) await timeCalls(calls[name], CONFIG.seq.perSlice, samples[name]);
    }
    for (const name of order) out.seq[name] = latencyStats(samples[name]);

    const { inFlight, slices, windowMs, warmupMs } = CONFIG.pipe;
    log(`round ${round + 1}: ${inFlight} in flight, ${slices} slices × ${windowMs} ms per subject`);
    const rates = Object.fromEntries(order.map((n) => [n, []]));
    for (let s = 0; s < slices; s++) {
      for (const name of order) rates[name].push(await pipelinedRate(calls[name], { inFlight, windowMs, warmupMs }));
    }
    out.pipelinedSlices = rates;
    for (const name of order) out.pipelined[name] = rates[name].reduce((a, b) => a + b, 0) / rates[name].length;

    out.lookup = {
      handle: lookupCost(() => bareHandle.call.echo, LOOKUPS),
      treeGet: lookupCost(() => tree.get("echo").call.echo, LOOKUPS),
    };
  } finally {
    await Promise.allSettled([bare.stop(), tree.stop()]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 2. memory per idle worker (runs in a probe process: node --expose-gc supervision.mjs --memory-probe=kind)

async function memoryProbe(kind) {
  if (typeof globalThis.gc !== "function") throw new Error("the memory probe needs node --expose-gc");
  const n = Number(argv.find((a) => a.startsWith("--workers="))?.split("=")[1] ?? 20);
  const idleMs = Number(argv.find((a) => a.startsWith("--idle-ms="))?.split("=")[1] ?? 5000);

  const startN = async (count) => {
    if (kind === "supervised") {
      const tree = oneWorkerTree("mem", count);
      await tree.start();
      const handles = tree.root.descendants.map((node) => tree.get(node.id));
      return { handles, workers: tree.root.descendants.map((node) => tree.worker(node.id)), stop: () => tree.stop() };
    }
    const workers = [];
    try {
      for (let i = 0; i < count; i++) {
        const w = ParentWorker.spawn(ECHO_WORKER, "node", { onOutput });
        workers.push(w);
        await w.start();
      }
    } catch (err) {
      await Promise.allSettled(workers.map((w) => w.stop()));
      throw err;
    }
    return { handles: workers.map((w) => w.handle()), workers, stop: () => Promise.all(workers.map((w) => w.stop())) };
  };

  // Warm-up: one worker of the same kind, started, called, stopped.
  const warm = await startN(1);
  for (let i = 0; i < 200; i++) await warm.handles[0].call.echo(PAYLOAD);
  await warm.stop();
  // Idle as long before the baseline as before the second measurement: V8 shrinks an idle heap
  // (its memory reducer), which otherwise shows up as a negative RSS delta.
  await sleep(idleMs);
  const before = await gcAndMeasure();

  // Are the stopped workers garbage once nobody holds them? (a leak check, not a measurement)
  let collected = 0;
  const registry = new FinalizationRegistry(() => collected++);
  // In its own function: a suspended async frame may keep a dead local (the last handle of a
  // loop) alive, and one supervised worker reaches the whole tree through the actor system.
  const { children, withN } = await (async () => {
    const fleet = await startN(n);
    for (const w of fleet.workers) registry.register(w, undefined);
    for (const h of fleet.handles) {
      if ((await h.call.echo(PAYLOAD)) !== PAYLOAD) throw new Error("echo failed");
    }
    const count = descendants().length;
    await sleep(idleMs);
    const measured = await gcAndMeasure();
    await fleet.stop();
    return { children: count, withN: measured };
  })();
  await sleep(idleMs);
  const after = await gcAndMeasure();
  return { kind, workers: n, children, idleMs, before, withN, after, collected };
}

function runProbe(kind) {
  const { workers, idleMs } = CONFIG.memory;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", SELF, `--memory-probe=${kind}`, `--workers=${workers}`, `--idle-ms=${idleMs}`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code !== 0) return reject(new Error(`memory probe (${kind}) exited with ${code ?? signal}`));
      try {
        resolve(JSON.parse(stdout.trim().split("\n").at(-1)));
      } catch (err) {
        reject(err);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// 3. fleet of 50 supervised workers

async function runFleet(variant, size) {
  const leftoverBefore = descendants();
  const spec =
    variant === "pool"
      ? { id: "fleet", children: [pool({ id: "workers", spawn: ECHO_WORKER, size, onOutput })] }
      : { id: "fleet", children: Array.from({ length: size }, (_, i) => worker({ id: `w${i + 1}`, spawn: ECHO_WORKER, onOutput })) };
  const tree = supervise(spec);
  const workers = () => (variant === "pool" ? [...tree.pool("workers").workers] : spec.children.map((c) => tree.worker(c.id)));
  const out = { variant, size, leftoverBefore: leftoverBefore.length };
  let t0 = performance.now();
  try {
    await tree.start();
    out.startMs = performance.now() - t0;
    const ws = workers();
    out.ready = ws.filter((w) => w.state === "connected" || w.state === "degraded").length;
    out.pids = ws.map((w) => w.pid);
    out.childrenRunning = descendants().length;
    // every worker answers (through the pool's round-robin, or each worker's handle)
    const answers =
      variant === "pool"
        ? await Promise.all(Array.from({ length: size * 2 }, () => tree.get("workers").call.echo(PAYLOAD)))
        : await Promise.all(spec.children.map((c) => tree.get(c.id).call.echo(PAYLOAD)));
    out.answered = answers.filter((a) => a === PAYLOAD).length;
    out.expectedAnswers = answers.length;
    out.lookupUs =
      variant === "pool"
        ? lookupCost(() => tree.get("workers").call.echo, LOOKUPS / 10)
        : lookupCost(() => tree.get(`w${size}`).call.echo, LOOKUPS / 10);
  } finally {
    t0 = performance.now();
    await tree.stop();
    out.stopMs = performance.now() - t0;
  }
  out.treeState = tree.state;
  out.left = descendants();
  out.pidsAlive = (out.pids ?? []).filter(alive);
  out.pass =
    out.leftoverBefore === 0 &&
    out.ready === size &&
    out.childrenRunning >= size &&
    out.answered === out.expectedAnswers &&
    out.treeState === "stopped" &&
    out.left.length === 0 &&
    out.pidsAlive.length === 0;
  if (out.left.length > 0) {
    await sleep(1000);
    out.leftAfter1s = descendants();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// report

const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : "-");
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : "-");
const f3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : "-");
const int = (v) => (Number.isFinite(v) ? String(Math.round(v)) : "-");
const kib = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(0)}` : "-");
const mib = (bytes) => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(1) : "-");

function stat(values) {
  const finite = values.filter(Number.isFinite);
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), values };
}
const withRange = (fmt) => (s) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
const list = (fmt) => (s) => s.values.map(fmt).join(", ");

function summarizeCalls(rounds) {
  const metric = (get) => ({
    bare: stat(rounds.map((r) => get(r, "bare"))),
    supervised: stat(rounds.map((r) => get(r, "supervised"))),
    held: stat(rounds.map((r) => get(r, "held"))),
    ratio: stat(rounds.map((r) => ratio(get(r, "supervised"), get(r, "bare")))),
    ratioHeld: stat(rounds.map((r) => ratio(get(r, "held"), get(r, "bare")))),
  });
  return {
    p50: metric((r, n) => r.seq[n].p50),
    p99: metric((r, n) => r.seq[n].p99),
    mean: metric((r, n) => r.seq[n].mean),
    pipe: metric((r, n) => r.pipelined[n]),
  };
}

function summarizeMemory(probes) {
  const per = (kind, field) =>
    stat(probes.filter((p) => p.kind === kind).map((p) => (p.withN[field] - p.before[field]) / p.workers));
  const out = {};
  for (const kind of ["supervised", "bare"]) {
    out[kind] = {
      rss: per(kind, "rss"),
      heapUsed: per(kind, "heapUsed"),
      native: per(kind, "native"),
      external: per(kind, "external"),
      baseRss: stat(probes.filter((p) => p.kind === kind).map((p) => p.before.rss)),
      baseHeap: stat(probes.filter((p) => p.kind === kind).map((p) => p.before.heapUsed)),
      afterStopHeap: stat(probes.filter((p) => p.kind === kind).map((p) => p.after.heapUsed - p.before.heapUsed)),
      afterStopRss: stat(probes.filter((p) => p.kind === kind).map((p) => p.after.rss - p.before.rss)),
    };
  }
  return out;
}

function report(meta, calls, memory, probes, fleets, callRounds) {
  const lines = [];
  const yes = (b) => (b ? "**met**" : "**not met**");
  lines.push(`# Supervision overhead${quick ? " (--quick)" : ""}`);
  lines.push("");
  lines.push(
    `${meta.date} · node ${meta.node} · ${meta.cpus} CPUs (${meta.cpuModel}) · load average ` +
      `${meta.loadavgStart.map(f2).join(" / ")} at start, ${meta.loadavgEnd.map(f2).join(" / ")} at end · ` +
      `${meta.rounds} interleaved rounds · wall ${f1(meta.wallSeconds)} s`,
  );
  lines.push("");
  lines.push(`1-min load average at the start of each call round: ${meta.roundLoad.map(f2).join(", ")}.`);
  lines.push("");
  lines.push(
    `Subjects: **bare** = \`ParentWorker.spawn(echo-worker).handle().call.echo("${PAYLOAD}")\`; **supervised** = ` +
      `\`tree.get("echo").call.echo("${PAYLOAD}")\` (lookup on every call) in a one-worker tree; **held** = the same tree, ` +
      `handle from \`tree.get("echo")\` kept. Same worker script, default heartbeats. Sequential: ${CONFIG.seq.warmup} warm-up, then ` +
      `${CONFIG.seq.slices} alternating slices × ${CONFIG.seq.perSlice} timed calls per subject per round; ${CONFIG.pipe.inFlight} in flight: ` +
      `${CONFIG.pipe.slices} alternating slices × ${CONFIG.pipe.windowMs} ms. Cells: median over rounds (min–max); ratios within each round, then the median.`,
  );
  lines.push("");

  lines.push(`## Round trip, \`echo("${PAYLOAD}")\`: supervised vs bare (µs; calls/s)`);
  lines.push("");
  const rows = [
    { m: "p50 µs", ...calls.p50, fmt: f1, target: `≤ ${TARGET_RATIO}×: ${yes(calls.p50.ratio.median <= TARGET_RATIO)}` },
    { m: "p99 µs", ...calls.p99, fmt: f1, target: "" },
    { m: "mean µs", ...calls.mean, fmt: f1, target: "" },
    { m: `calls/s, ${CONFIG.pipe.inFlight} in flight`, ...calls.pipe, fmt: int, target: `≥ ${f2(1 / TARGET_RATIO)}× (same 5%): ${yes(calls.pipe.ratio.median >= 1 / TARGET_RATIO)}` },
  ];
  lines.push(
    formatTable(rows, [
      { key: "m", label: "" },
      { key: "bare", label: "bare", format: (s, r) => withRange(r.fmt)(s), align: "right" },
      { key: "supervised", label: "supervised", format: (s, r) => withRange(r.fmt)(s), align: "right" },
      { key: "held", label: "held handle", format: (s, r) => withRange(r.fmt)(s), align: "right" },
      { key: "ratio", label: "sup/bare", format: (s) => f3(s.median), align: "right" },
      { key: "ratio", label: "per-round sup/bare", format: list(f2) },
      { key: "ratioHeld", label: "held/bare", format: (s) => f3(s.median), align: "right" },
      { key: "target", label: "target" },
    ]),
  );
  lines.push("");

  const lk = (get) => stat(callRounds.map(get));
  const fleetLookup = (variant) => stat(fleets.filter((f) => f.variant === variant).map((f) => f.lookupUs));
  lines.push(
    `Lookup only (no call sent; µs per \`get\`, median over rounds): \`handle.call.echo\` ${f3(lk((r) => r.lookup.handle).median)}, ` +
      `\`tree.get("echo").call.echo\` in the one-worker tree ${f3(lk((r) => r.lookup.treeGet).median)}, ` +
      `\`tree.get("w${CONFIG.fleet.size}").call.echo\` in the ${CONFIG.fleet.size}-worker tree ${f3(fleetLookup("children").median)}, ` +
      `\`tree.get("workers").call.echo\` (pool of ${CONFIG.fleet.size}) ${f3(fleetLookup("pool").median)}.`,
  );
  lines.push("");

  lines.push(`## Parent memory per idle worker (${CONFIG.memory.workers} workers, idle ${CONFIG.memory.idleMs} ms, after gc)`);
  lines.push("");
  lines.push(
    formatTable(
      ["supervised", "bare"].map((kind) => ({ kind, ...memory[kind] })),
      [
        { key: "kind", label: "" },
        { key: "rss", label: "RSS KiB/worker", format: withRange(kib), align: "right" },
        { key: "heapUsed", label: "heapUsed KiB/worker", format: withRange(kib), align: "right" },
        { key: "native", label: "RSS − heapTotal KiB/worker", format: withRange(kib), align: "right" },
        { key: "baseRss", label: "baseline RSS MiB", format: (s) => mib(s.median), align: "right" },
        { key: "baseHeap", label: "baseline heapUsed MiB", format: (s) => mib(s.median), align: "right" },
        { key: "afterStopHeap", label: "heapUsed left after stop KiB (total)", format: withRange(kib), align: "right" },
        { key: "afterStopRss", label: "RSS left after stop KiB (total)", format: withRange(kib), align: "right" },
      ],
    ),
  );
  lines.push("");
  lines.push(
    `Supervision's own share (supervised − bare, medians): RSS ${kib(memory.supervised.rss.median - memory.bare.rss.median)} KiB, ` +
      `heapUsed ${kib(memory.supervised.heapUsed.median - memory.bare.heapUsed.median)} KiB per worker. ` +
      `${probes.length} probe processes (${probes.map((p) => p.kind[0]).join("")}), each \`node --expose-gc\`. ` +
      `Stopped workers garbage-collected once unreferenced: ${probes.map((p) => `${p.collected}/${p.workers}`).join(", ")}.`,
  );
  lines.push("");

  lines.push(`## ${CONFIG.fleet.size} supervised workers: start, stop, nothing left`);
  lines.push("");
  lines.push(
    formatTable(fleets, [
      { key: "variant", label: "tree", format: (v) => (v === "pool" ? `pool, size ${CONFIG.fleet.size}` : `${CONFIG.fleet.size} worker children`) },
      { key: "startMs", label: "`tree.start()` ms", format: int, align: "right" },
      { key: "startMs", label: "per worker ms", format: (v) => f1(v / CONFIG.fleet.size), align: "right" },
      { key: "ready", label: "ready", align: "right" },
      { key: "answered", label: "answered", format: (v, r) => `${v}/${r.expectedAnswers}`, align: "right" },
      { key: "stopMs", label: "`tree.stop()` ms", format: int, align: "right" },
      { key: "left", label: "processes left", format: (v) => String(v.length), align: "right" },
      { key: "pass", label: "", format: (v) => (v ? "**PASS**" : "**FAIL**") },
    ]),
  );
  lines.push("");
  const allPass = fleets.every((f) => f.pass);
  lines.push(`Fleet check: ${allPass ? "**PASS**" : "**FAIL**"} (all ready, all answered, tree stopped, no descendant process and no worker pid alive after \`stop()\`).`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { meta, finish } = startRunRecord({ quick, rounds: CONFIG.rounds });
  log(`${quick ? "quick" : "full"} run, ${CONFIG.rounds} rounds, load ${meta.loadavgStart.map(f2).join(" ")}`);

  const callRounds = [];
  for (let round = 0; round < CONFIG.rounds; round++) callRounds.push(await runCallRound(round));

  const probes = [];
  for (let round = 0; round < CONFIG.memory.rounds; round++) {
    for (const kind of round % 2 === 0 ? ["supervised", "bare"] : ["bare", "supervised"]) {
      log(`memory probe ${round + 1}: ${kind}, ${CONFIG.memory.workers} workers`);
      probes.push(await runProbe(kind));
    }
  }

  const fleets = [];
  for (let round = 0; round < CONFIG.fleet.rounds; round++) {
    for (const variant of round % 2 === 0 ? ["pool", "children"] : ["children", "pool"]) {
      log(`fleet ${round + 1}: ${variant}, ${CONFIG.fleet.size} workers`);
      fleets.push(await runFleet(variant, CONFIG.fleet.size));
    }
  }

  const calls = summarizeCalls(callRounds);
  const memory = summarizeMemory(probes);
  const file = finish(`${RESULTS_DIR}supervision-latest.json`, callRounds.map((r) => r.loadavg[0]), {
    config: CONFIG,
    callRounds,
    probes,
    fleets,
    summary: { calls, memory },
  });
  console.log(report(meta, calls, memory, probes, fleets, callRounds));
  log(`raw data: ${file}`);
  return fleets.every((f) => f.pass);
}

// Ctrl-C / kill: exit; the library's 'exit' hook SIGKILLs the process group of every child still alive.
for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => process.exit(130));

const run = probeArg ? memoryProbe(probeArg.slice("--memory-probe=".length)).then((r) => console.log(JSON.stringify(r))) : main();
run.then(
  (ok) => {
    if (ok === false) process.exitCode = 1;
    setTimeout(() => {
      log(`lingering handles after the run: ${process.getActiveResourcesInfo().join(", ")}`);
      process.exit(process.exitCode ?? 0);
    }, 5000).unref();
  },
  (err) => {
    console.error(err?.stack ?? err);
    process.exit(1);
  },
);
