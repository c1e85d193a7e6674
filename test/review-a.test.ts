import { afterEach, describe, expect, it } from "vitest";
import { supervise, worker, pool, type SupervisionTree, type TreeEvent } from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import { isAlive, waitFor } from "./helpers/processes.js";

const SUPERVISED = fixture("supervised-worker.mjs");
const MISBEHAVING = fixture("misbehaving-child.mjs");
const quiet = { onOutput: () => {} };
const trees: SupervisionTree[] = [];
afterEach(async () => { await Promise.all(trees.splice(0).map((t) => t.stop())); });

describe("review", () => {
  it("A: supervised disconnect-but-alive child: REOPEN arrives while closing", async () => {
    const tree = supervise({ id: "root", children: [worker({ id: "w", spawn: MISBEHAVING, ...quiet, heartbeatIntervalMs: 0 })] });
    trees.push(tree);
    const events: string[] = [];
    tree.subscribe((e: TreeEvent) => events.push(`${Date.now() % 100000} ${e.path} ${e.from}->${e.to} (${e.reason})`));
    await tree.start();
    const w = tree.worker("w");
    const pid = w.pid!;
    expect(await w.call.closeSocket()).toBe(true);
    try {
      await waitFor(() => w.state === "connected" && w.pid !== pid, 10000, "a new worker");
    } finally {
      console.log(events.join("\n"), "\nstate now:", w.state, "old alive:", isAlive(pid));
    }
  }, 20000);
});
