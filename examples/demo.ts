// The demo: a TypeScript parent calling a Python worker and a TypeScript worker.
//   npm run demo
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CallTimeoutError, ParentWorker, RemoteCallError, supervise, worker, WorkerExitedError } from "multifrost";
import type { TextWorker } from "./text-worker.js";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
// Debian's python3 has python3-zmq/python3-msgpack; MULTIFROST_PYTHON picks another one.
const python = process.env.MULTIFROST_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

interface MathWorker {
  add(a: number, b: number): number;
  describe(values: number[]): { count: number; mean: number; stdev: number; max: number };
  factorial(n: number): number | bigint;
  divide(a: number, b: number): number;
  slow(seconds: number): number;
}

const step = (title: string): void => console.log(`\n── ${title}`);

const pyWorker = ParentWorker.spawn(here("../python/math_worker.py"), python, { name: "math.py" });
const tsWorker = ParentWorker.spawn(here("./text-worker.js"), "node", { name: "text.ts" });
const math = pyWorker.handle<MathWorker>();
const text = tsWorker.handle<TextWorker>();
tsWorker.on("state", ({ from, to, reason }) => console.log(`   [text.ts] ${from} → ${to} (${reason})`));

try {
  step("start both workers (resolves once each has answered a heartbeat)");
  const started = performance.now();
  await Promise.all([math.start(), text.start()]);
  console.log(`   ready in ${(performance.now() - started).toFixed(0)} ms — python pid ${pyWorker.pid}, node pid ${tsWorker.pid}`);

  step("call Python");
  console.log("   add(2, 3)          =", await math.call.add(2, 3));
  console.log("   describe([...])    =", await math.call.describe([2, 4, 4, 4, 5, 5, 7, 9]));
  console.log("   factorial(20)      =", await math.call.factorial(20), "(int64 → bigint)");

  step("call TypeScript, then feed its result to Python");
  const counts = await text.call.wordCount("the quick fox and the lazy dog and the cat");
  console.log("   wordCount(...)     =", counts);
  console.log("   shout('hello')     =", await text.call.shout("hello"));
  const lengths = await text.call.fetchLengths(["a", "bb", "ccc", "dddd"]);
  console.log("   python describes   =", await math.call.describe(lengths));

  step("100 concurrent calls to each worker");
  const t0 = performance.now();
  const sums = await Promise.all(Array.from({ length: 100 }, (_, i) => math.call.add(i, i)));
  const shouts = await Promise.all(Array.from({ length: 100 }, (_, i) => text.call.shout(`n${i}`)));
  console.log(`   ${sums.length + shouts.length} answers in ${(performance.now() - t0).toFixed(0)} ms; last: ${sums[99]}, ${shouts[99]}`);

  step("a Python exception arrives as a RemoteCallError");
  try {
    await math.call.divide(1, 0);
  } catch (error) {
    if (!(error instanceof RemoteCallError)) throw error;
    console.log(`   ${error.remoteType}: ${error.remoteMessage} (traceback: ${error.remoteStack?.split("\n").length} lines)`);
  }

  step("a slow call with a per-call timeout");
  try {
    await math.call.withOptions({ timeout: 300 }).slow(2);
  } catch (error) {
    if (!(error instanceof CallTimeoutError)) throw error;
    console.log(`   ${error.name}: ${error.message}`);
  }

  step("a worker that dies: pending and later calls fail at once");
  try {
    await Promise.all([text.call.crash(3), text.call.withOptions({ timeout: 60_000 }).fetchLengths(["still waiting"])]);
    await text.call.shout("too late");
  } catch (error) {
    if (!(error instanceof WorkerExitedError)) throw error;
    console.log(`   ${error.name}: exit code ${error.exitCode}; state is now '${tsWorker.state}'`);
  }
} finally {
  step("stop (shutdown message → SIGTERM → SIGKILL, whole process group)");
  const pids = [pyWorker.pid, tsWorker.pid];
  await Promise.all([math.stop(), text.stop()]);
  const alive = pids.filter((pid) => pid !== undefined && isAlive(pid));
  console.log(`   stopped; processes left: ${alive.length === 0 ? "none" : alive.join(", ")}`);
}

step("supervised: a tree whose workers come back by themselves — live at the dashboard URL below");
const tree = supervise({
  id: "root",
  strategy: "one_for_one",
  intensity: 5,
  periodMs: 10_000,
  children: [
    worker({ id: "math", spawn: here("../python/math_worker.py"), executable: python, idempotent: true, backoff: { minMs: 100, maxMs: 2000, jitter: 0.2 } }),
    worker({ id: "text", spawn: here("./text-worker.js") }),
  ],
});
tree.subscribe((e) => {
  if (e.kind === "worker") console.log(`   [${e.path}] ${e.from} → ${e.to} (${e.reason})`);
});
const dashboard = await tree.serveDashboard({ port: Number(process.env.MULTIFROST_DASHBOARD_PORT ?? 0) });
try {
  await tree.start();
  console.log(`   dashboard: ${dashboard.url}  (open it while the demo runs; MULTIFROST_DEMO_LINGER_MS=30000 keeps it up longer)`);
  const supervisedMath = tree.get<MathWorker>("math");
  const supervisedText = tree.get<TextWorker>("text");
  // Real work on both, in a loop, while the Python worker is killed midway.
  const firstPid = tree.worker("math").pid!;
  let ok = 0;
  let failed = 0;
  const work = async (rounds: number): Promise<void> => {
    for (let i = 0; i < rounds; i++) {
      try {
        const counts = await supervisedText.call.wordCount(`round ${i} of the demo and the supervised tree`);
        const stats = await supervisedMath.call.describe(Object.values(counts));
        if (stats.count > 0) ok++;
      } catch {
        failed++;
      }
    }
  };
  await work(200);
  console.log(`   ${ok} rounds of TS → Python work done; now kill -9 the Python worker (pid ${firstPid})`);
  process.kill(firstPid, "SIGKILL");
  // The spec marks math idempotent: calls cut off by the kill are sent again once it is back.
  await work(200);
  const math = tree.worker("math");
  console.log(`   ${ok} rounds done in all, ${failed} failed; python is back as pid ${math.pid} (restarts: ${math.restartCount})`);
  const linger = Number(process.env.MULTIFROST_DEMO_LINGER_MS ?? 0);
  if (linger > 0) await new Promise((resolve) => setTimeout(resolve, linger));
  step("summary (tree.snapshot())");
  for (const child of tree.snapshot().children) {
    if (child.kind !== "worker") continue;
    const { path, state, restarts, calls, latencyMs, lastExit } = child;
    console.log(
      `   ${path.padEnd(10)} ${state.padEnd(10)} restarts ${restarts}  calls ok ${calls.ok}, failed ${calls.failed}  p50 ${latencyMs.p50?.toFixed(2) ?? "-"} ms, p99 ${latencyMs.p99?.toFixed(2) ?? "-"} ms${lastExit ? `  last exit: ${lastExit.reason}` : ""}`,
    );
  }
} finally {
  const pids = [tree.worker("math").pid, tree.worker("text").pid];
  await tree.stop();
  await dashboard.close();
  const alive = pids.filter((pid) => pid !== undefined && isAlive(pid));
  console.log(`   tree stopped; processes left: ${alive.length === 0 ? "none" : alive.join(", ")}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
