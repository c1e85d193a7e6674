// Restart-decision latency (issue 9): how long a supervisor takes to decide and order a restart
// once a worker went down, next to a bare ParentWorker that restarts itself — side by side in one
// run, alternating, because these machines are noisy.
//
//   node bench/restart-latency.mjs [--quick]        (run `npm run build` first; npm run bench runs it)
//
// Each kill: SIGKILL the worker's process, then timestamps (performance.now(), taken in the
// listeners) of the exit event, the `restarting` transition (the down, seen), the `spawning`
// transition (the reopen order: for the tree, the supervisor's decision — intensity counted,
// strategy applied, backoff of 0 ms waited — for the bare worker, its own machine's) and
// `connected` (the new worker answered). Backoff is 0 ms on both, so the decision is all there is.
import { performance } from "node:perf_hooks";
import { ParentWorker, supervise, worker } from "../dist/index.js";
import { ECHO_WORKER } from "./lib/our-peer.mjs";
import { formatTable, median, percentile } from "./lib/measure.mjs";

const quick = process.argv.includes("--quick");
const KILLS = quick ? 6 : 30;
const noBackoff = { minMs: 0, maxMs: 0, jitter: 0 };
const onOutput = () => {};
const log = (msg) => process.stderr.write(`[bench:restart] ${msg}\n`);

/** Resolves with the timestamps of one kill → connected cycle of `parentWorker`. */
function killOnce(parentWorker) {
  return new Promise((resolve, reject) => {
    const t = { kill: performance.now() };
    const timer = setTimeout(() => reject(new Error("no restart within 10 s")), 10_000);
    const onExit = () => (t.exit ??= performance.now());
    const onState = (change) => {
      const now = performance.now();
      if (change.to === "restarting") t.down ??= now;
      else if (change.to === "spawning" && t.down !== undefined) t.reopen ??= now;
      else if (change.to === "connected" && t.reopen !== undefined) {
        t.up = now;
        clearTimeout(timer);
        parentWorker.off("exit", onExit);
        parentWorker.off("state", onState);
        resolve(t);
      }
    };
    parentWorker.on("exit", onExit);
    parentWorker.on("state", onState);
    process.kill(parentWorker.pid, "SIGKILL");
  });
}

const stats = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: median(values), p99: percentile(sorted, 99), max: sorted.at(-1) };
};

async function main() {
  const tree = supervise({ id: "root", intensity: 1000, periodMs: 1000, children: [worker({ id: "w", spawn: ECHO_WORKER, backoff: noBackoff, onOutput })] });
  const bare = ParentWorker.spawn(ECHO_WORKER, "node", { autoRestart: true, maxRestartAttempts: Infinity, backoff: noBackoff, onOutput });
  const samples = { supervised: [], bare: [] };
  try {
    await Promise.all([tree.start(), bare.start()]);
    const subjects = { supervised: tree.worker("w"), bare };
    for (let i = 0; i < KILLS; i++) {
      for (const name of i % 2 === 0 ? ["supervised", "bare"] : ["bare", "supervised"]) {
        samples[name].push(await killOnce(subjects[name]));
      }
    }
  } finally {
    await Promise.allSettled([tree.stop(), bare.stop()]);
  }
  const rows = [];
  for (const [name, runs] of Object.entries(samples)) {
    const decision = stats(runs.map((t) => t.reopen - t.down));
    const seen = stats(runs.map((t) => t.down - t.kill));
    const total = stats(runs.map((t) => t.up - t.kill));
    rows.push({ name, kills: runs.length, seen: seen.p50.toFixed(2), decision: decision.p50.toFixed(3), decisionP99: decision.p99.toFixed(3), total: total.p50.toFixed(1), totalP99: total.p99.toFixed(1) });
  }
  console.log(`\n### Restart-decision latency (${KILLS} SIGKILLs per subject, alternating; backoff 0 ms)\n`);
  const right = (key, label) => ({ key, label, align: "right" });
  console.log(
    formatTable(rows, [
      { key: "name", label: "subject" },
      right("kills", "kills"),
      right("seen", "kill → down seen, ms p50"),
      right("decision", "down → reopen ordered, ms p50"),
      right("decisionP99", "p99"),
      right("total", "kill → connected again, ms p50"),
      right("totalP99", "p99"),
    ]),
  );
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error?.stack ?? error);
    process.exit(1);
  },
);
