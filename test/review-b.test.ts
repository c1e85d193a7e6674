import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { supervise, worker, pool, supervisor, ParentWorker, type SupervisionTree, type TreeEvent } from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const SUPERVISED = fixture("supervised-worker.mjs");
const MISBEHAVING = fixture("misbehaving-child.mjs");
const quiet = { onOutput: () => {} };
const trees: SupervisionTree[] = [];
afterEach(async () => { await Promise.all(trees.splice(0).map((t) => t.stop())); });
function log(tree: SupervisionTree): string[] {
  const events: string[] = [];
  const t0 = Date.now();
  tree.subscribe((e: TreeEvent) => events.push(`${Date.now() - t0} ${e.path} ${e.from}->${e.to} (${e.reason.slice(0, 100)})`));
  return events;
}

describe("review", () => {
  it("B: pool shrunk while a removed member waits its backoff: member resurrected, orphaned", async () => {
    const tree = supervise({ id: "root", children: [pool({ id: "p", size: 2, spawn: SUPERVISED, ...quiet, backoff: { minMs: 1000, maxMs: 1000, jitter: 0 } })] });
    trees.push(tree);
    const events = log(tree);
    await tree.start();
    const p = tree.pool("p");
    const removed = p.workers[1]!;
    process.kill(removed.pid!, "SIGKILL");
    await waitFor(() => removed.state === "restarting", 3000, "down");
    await p.resize(1);
    console.log("after resize:", removed.state);
    await new Promise((r) => setTimeout(r, 2500));
    console.log("removed member state 2.5s later:", removed.state, removed.pid, "alive:", isAlive(removed.pid!));
    await tree.stop();
    await new Promise((r) => setTimeout(r, 500));
    console.log("after tree.stop(): removed member", removed.state, "alive:", isAlive(removed.pid!), "descendants:", descendants());
    console.log(events.join("\n"));
    const leaked = removed.state;
    await removed.stop();
    expect(leaked).toBe("stopped");
  }, 20000);

  it("C: user restart() of a supervised worker restarts it twice", async () => {
    const tree = supervise({ id: "root", children: [worker({ id: "w", spawn: SUPERVISED, ...quiet, backoff: { minMs: 1500, maxMs: 1500, jitter: 0 } })] });
    trees.push(tree);
    const events = log(tree);
    await tree.start();
    const w = tree.worker("w");
    const pids = new Set([w.pid]);
    w.on("state", () => pids.add(w.pid));
    await w.restart("by hand");
    await new Promise((r) => setTimeout(r, 3000));
    console.log(events.join("\n"), "\npids:", [...pids]);
    expect(w.restartCount).toBe(1);
  }, 20000);

  it("D: one_for_all: first child crashes while the second is still starting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mfrev-"));
    const tree = supervise({
      id: "root", strategy: "one_for_all", intensity: 5,
      children: [
        worker({ id: "a", spawn: "/tmp/mfrev/crash-once.mjs", ...quiet, env: { MF_MARKER: join(dir, "m"), MF_EXIT_AFTER_MS: "100" }, backoff: { minMs: 10, maxMs: 10, jitter: 0 } }),
        worker({ id: "b", spawn: "/tmp/mfrev/slow-start.mjs", ...quiet, env: { MF_DELAY: "1500" } }),
      ],
    });
    trees.push(tree);
    const events = log(tree);
    let err: unknown;
    await tree.start().catch((e) => (err = e));
    console.log(events.join("\n"), "\nstart error:", String(err));
    expect(err).toBeUndefined();
  }, 30000);

  it("E: stop() of a failed (unsupervised) worker returns while its process is still alive", async () => {
    const w = ParentWorker.spawn(MISBEHAVING, "node", { ...quiet, heartbeatIntervalMs: 0, autoRestart: false });
    await w.start();
    const pid = w.pid!;
    await w.call.closeSocket();
    await waitFor(() => w.state === "failed", 3000, "failed");
    const t = Date.now();
    await w.stop();
    console.log("stop took", Date.now() - t, "ms; child alive after stop():", isAlive(pid));
    const alive = isAlive(pid);
    await waitFor(() => !isAlive(pid), 6000, "gone");
    expect(alive).toBe(false);
  }, 20000);
});
