import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { InspectionEvent } from "xstate";
import {
  InvalidArgumentError,
  jsonlInspector,
  pool,
  supervise,
  supervisor,
  SupervisorError,
  worker,
  type SupervisionTree,
  type SupervisorSpec,
  type TreeEvent,
} from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const CRASHY = fixture("crash-loop-worker.mjs");
const quiet = { onOutput: () => {} };
const fastBackoff = { minMs: 20, maxMs: 200, jitter: 0 };

const trees: SupervisionTree[] = [];
function track(tree: SupervisionTree): SupervisionTree {
  trees.push(tree);
  return tree;
}

afterEach(async () => {
  await Promise.all(trees.splice(0).map((tree) => tree.stop()));
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by supervisor tests");
});

function events(tree: SupervisionTree): TreeEvent[] {
  const seen: TreeEvent[] = [];
  tree.subscribe((event) => seen.push(event));
  return seen;
}

/** Resolves with the first event matching `match`. */
function nextEvent(tree: SupervisionTree, match: (event: TreeEvent) => boolean): Promise<TreeEvent> {
  return new Promise((resolve) => {
    const off = tree.subscribe((event) => {
      if (!match(event)) return;
      off();
      resolve(event);
    });
  });
}

const mathWorker = (id: string) => worker({ id, spawn: MATH, backoff: fastBackoff, ...quiet });

describe("supervise(): a tree of real workers", () => {
  it("starts children in order, routes calls by id and path, stops in reverse order, leaves nothing", async () => {
    const tree = track(
      supervise({
        id: "root",
        children: [mathWorker("a"), supervisor({ id: "inner", strategy: "rest_for_one", children: [mathWorker("b"), mathWorker("c")] })],
      }),
    );
    const seen = events(tree);
    await tree.start();
    expect(tree.state).toBe("running");
    expect(await tree.get("a").call.add(1, 2)).toBe(3);
    expect(await tree.get("inner/b").call.add(2, 2)).toBe(4);
    expect(await tree.get("root/inner/c").call.add(3, 3)).toBe(6);
    const pids = ["a", "b", "c"].map((id) => tree.worker(id).pid!);
    expect(new Set(descendants())).toEqual(new Set(pids));

    const connectedOrder = seen.filter((e) => e.kind === "worker" && e.to === "connected").map((e) => e.path);
    expect(connectedOrder).toEqual(["root/a", "root/inner/b", "root/inner/c"]);
    expect(seen.find((e) => e.path === "root" && e.to === "running")).toBeDefined();

    await tree.stop();
    const stoppedOrder = seen.filter((e) => e.kind === "worker" && e.to === "stopped").map((e) => e.path);
    expect(stoppedOrder).toEqual(["root/inner/c", "root/inner/b", "root/a"]);
    expect(tree.state).toBe("stopped");
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(descendants()).toEqual([]);
  });

  it("one_for_one: kill -9 restarts only that worker, and its handle works again", async () => {
    const tree = track(supervise({ id: "root", strategy: "one_for_one", children: [mathWorker("a"), mathWorker("b")] }));
    await tree.start();
    const handle = tree.get("a");
    const [a, b] = [tree.worker("a").pid!, tree.worker("b").pid!];
    const restarting = nextEvent(tree, (e) => e.path === "root/a" && e.to === "restarting");
    const back = nextEvent(tree, (e) => e.path === "root/a" && e.to === "connected");
    process.kill(a, "SIGKILL");
    expect((await restarting).reason).toBe("killed by SIGKILL");
    await back;
    expect(tree.worker("a").pid).not.toBe(a);
    expect(tree.worker("b").pid).toBe(b);
    expect(await handle.call.pid()).toBe(tree.worker("a").pid);
  });

  it("one_for_all: one worker's death restarts every sibling", async () => {
    const tree = track(supervise({ id: "root", strategy: "one_for_all", children: [mathWorker("a"), mathWorker("b"), mathWorker("c")] }));
    await tree.start();
    const before = ["a", "b", "c"].map((id) => tree.worker(id).pid!);
    const allBack = Promise.all(
      ["a", "c"].map((id) => nextEvent(tree, (e) => e.path === `root/${id}` && e.to === "connected")),
    );
    process.kill(before[1]!, "SIGKILL");
    await allBack;
    await waitFor(() => tree.worker("b").state === "connected", 5000, "b back");
    const after = ["a", "b", "c"].map((id) => tree.worker(id).pid!);
    for (let i = 0; i < 3; i++) expect(after[i]).not.toBe(before[i]);
    for (const pid of before) expect(isAlive(pid)).toBe(false);
    for (const id of ["a", "b", "c"]) expect(await tree.get(id).call.add(1, 1)).toBe(2);
  });

  it("rest_for_one: the dead worker and those started after it restart, earlier ones keep running", async () => {
    const tree = track(supervise({ id: "root", strategy: "rest_for_one", children: [mathWorker("a"), mathWorker("b"), mathWorker("c")] }));
    await tree.start();
    const before = ["a", "b", "c"].map((id) => tree.worker(id).pid!);
    const cBack = nextEvent(tree, (e) => e.path === "root/c" && e.to === "connected");
    process.kill(before[1]!, "SIGKILL");
    await cBack;
    await waitFor(() => tree.worker("b").state === "connected", 5000, "b back");
    expect(tree.worker("a").pid).toBe(before[0]);
    expect(tree.worker("b").pid).not.toBe(before[1]);
    expect(tree.worker("c").pid).not.toBe(before[2]);
    expect(isAlive(before[0]!)).toBe(true);
  });

  it("a crash loop exceeds the intensity: the supervisor stops its children, fails, and escalates to the root", async () => {
    const tree = track(
      supervise({
        id: "root",
        intensity: 0,
        children: [
          mathWorker("steady"),
          supervisor({
            id: "loop",
            intensity: 2,
            period: 10_000,
            children: [worker({ id: "crashy", spawn: CRASHY, env: { MF_EXIT_AFTER_MS: "150" }, backoff: fastBackoff, ...quiet })],
          }),
        ],
      }),
    );
    const seen = events(tree);
    const rootFailed = nextEvent(tree, (e) => e.path === "root" && e.to === "failed");
    await tree.start();
    const failure = await rootFailed;
    expect(failure.reason).toMatch(/more than 0 restarts/);
    const loopFailed = seen.find((e) => e.path === "root/loop" && e.to === "failed")!;
    expect(loopFailed.reason).toMatch(/more than 2 restarts within 10000 ms \(last: crashy, exit 1\)/);
    expect(seen.filter((e) => e.path === "root/loop/crashy" && e.to === "restarting")).toHaveLength(3);
    expect(tree.worker("steady").state).toBe("stopped");
    expect(descendants()).toEqual([]);
  });

  it("a nested supervisor that gives up is restarted by its parent (within the parent's intensity)", async () => {
    const tree = track(
      supervise({
        id: "root",
        intensity: 5,
        children: [
          supervisor({
            id: "inner",
            intensity: 0,
            children: [mathWorker("x")],
          }),
        ],
      }),
    );
    await tree.start();
    const first = tree.worker("x").pid!;
    const innerFailed = nextEvent(tree, (e) => e.path === "root/inner" && e.to === "failed");
    const innerBack = nextEvent(tree, (e) => e.path === "root/inner" && e.to === "running");
    process.kill(first, "SIGKILL");
    expect((await innerFailed).reason).toMatch(/more than 0 restarts/);
    await innerBack;
    expect(tree.supervisor("inner").state).toBe("running");
    expect(tree.worker("x").pid).not.toBe(first);
    expect(await tree.get("x").call.add(2, 3)).toBe(5);
  });

  it("transient: a clean exit 0 is not restarted; temporary: a crash is not restarted", async () => {
    const tree = track(
      supervise({
        id: "root",
        children: [
          worker({ id: "t", spawn: MATH, restart: "transient", backoff: fastBackoff, ...quiet }),
          worker({ id: "tmp", spawn: MATH, restart: "temporary", backoff: fastBackoff, ...quiet }),
          mathWorker("other"),
        ],
      }),
    );
    await tree.start();
    const other = tree.worker("other").pid;
    const tStopped = nextEvent(tree, (e) => e.path === "root/t" && e.to === "stopped");
    await tree.get("t").call.exit(0);
    expect((await tStopped).reason).toBe("exit 0");
    const tmpFailed = nextEvent(tree, (e) => e.path === "root/tmp" && e.to === "failed");
    await tree.get("tmp").call.exit(3);
    expect((await tmpFailed).reason).toBe("exit 3");
    expect(tree.worker("t").restartCount).toBe(0);
    expect(tree.worker("tmp").restartCount).toBe(0);
    expect(tree.worker("other").pid).toBe(other);
    expect(tree.state).toBe("running");
  });

  it("a pool spreads calls round-robin over live workers, resizes within maxChildren, survives a kill", async () => {
    const tree = track(supervise({ id: "root", children: [pool({ id: "p", spawn: MATH, size: 3, maxChildren: 4, backoff: fastBackoff, ...quiet })] }));
    await tree.start();
    const p = tree.pool("p");
    const pids = new Set(p.workers.map((w) => w.pid));
    expect(pids.size).toBe(3);
    const answered = await Promise.all(Array.from({ length: 9 }, () => tree.get("p").call.pid()));
    expect(new Set(answered)).toEqual(pids);
    await p.resize(4);
    expect(p.size).toBe(4);
    expect(new Set(await Promise.all(Array.from({ length: 8 }, () => p.call.pid()))).size).toBe(4);
    expect(await rejectionOf(p.resize(5))).toBeInstanceOf(InvalidArgumentError);
    await p.resize(2);
    expect(descendants()).toHaveLength(2);
    const victim = p.workers[0]!.pid!;
    const down = nextEvent(tree, (e) => e.path === "root/p/p-1" && e.to === "restarting");
    process.kill(victim, "SIGKILL");
    await down;
    // Calls keep working while one worker restarts.
    for (let i = 0; i < 6; i++) expect(typeof (await p.call.pid())).toBe("number");
    await waitFor(() => p.workers.every((w) => w.state === "connected"), 5000, "pool back to full strength");
  });

  it("least-busy sends a call to the worker with the fewest calls in flight", async () => {
    const tree = track(supervise({ id: "root", children: [pool({ id: "p", spawn: MATH, size: 2, select: "least-busy", ...quiet })] }));
    await tree.start();
    const [w1, w2] = tree.pool("p").workers;
    const slow = tree.pool("p").call.sleep(500); // goes to one worker
    const busy = w1!.pendingCalls === 1 ? w1! : w2!;
    const idle = busy === w1 ? w2! : w1!;
    expect(await tree.pool("p").call.pid()).toBe(idle.pid);
    expect(await slow).toBe(500);
  });

  it("reads a tree from JSON (plain data), and refuses bad specs with clear errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-tree-"));
    try {
      const file = join(dir, "tree.json");
      writeFileSync(file, JSON.stringify({ id: "root", strategy: "one_for_one", children: [{ id: "m", spawn: MATH }, { id: "p", spawn: MATH, size: 1 }] }));
      const spec = JSON.parse(readFileSync(file, "utf8")) as SupervisorSpec;
      const tree = track(supervise(spec));
      await tree.start();
      expect(await tree.get("m").call.add(1, 1)).toBe(2);
      expect(await tree.get("p").call.add(2, 2)).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => supervise({ id: "root", children: [{ id: "x" } as never] })).toThrow(/exactly one of spawn/);
    expect(() => supervise({ id: "root", strategy: "one_for_none" as never, children: [] })).toThrow(InvalidArgumentError);
    expect(() => supervise({ id: "root", children: [mathWorker("a"), mathWorker("a")] })).toThrow(/two children have the id 'a'/);
    const tree = supervise({ id: "root", children: [] });
    expect(() => tree.get("nope")).toThrow(SupervisorError);
  });

  it("hands the inspect option to XState: supervisors and workers report as one actor system", async () => {
    const inspected: InspectionEvent[] = [];
    const tree = track(supervise({ id: "root", children: [mathWorker("a"), supervisor({ id: "s", children: [mathWorker("b")] })] }, { inspect: (e) => inspected.push(e) }));
    await tree.start();
    const actors = inspected.filter((e) => e.type === "@xstate.actor");
    const systems = new Set(inspected.map((e) => (e.actorRef as unknown as { system: unknown }).system));
    expect(systems.size).toBe(1);
    // root supervisor, nested supervisor, two connection machines (plus their invoked actors)
    const machineIds = new Set(actors.map((e) => (e.actorRef as { logic?: { id?: string } }).logic?.id).filter(Boolean));
    expect(machineIds).toEqual(new Set(["supervisor", "connection"]));
    const snapshots = inspected.filter((e) => e.type === "@xstate.snapshot");
    expect(snapshots.some((e) => String(JSON.stringify((e.snapshot as unknown as { value?: unknown }).value)).includes("connected"))).toBe(true);
  });

  it("writes the whole tree's inspection stream to a JSONL file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-jsonl-"));
    const file = join(dir, "trace.jsonl");
    const inspect = jsonlInspector(file);
    try {
      const tree = track(supervise({ id: "root", children: [mathWorker("a")] }, { inspect }));
      await tree.start();
      await tree.stop();
      inspect.close();
      const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as { type: string; machine?: string; value?: unknown });
      expect(lines.length).toBeGreaterThan(5);
      expect(lines.some((l) => l.type === "@xstate.snapshot" && l.machine === "connection" && JSON.stringify(l.value).includes("connected"))).toBe(true);
      expect(lines.some((l) => l.type === "@xstate.snapshot" && l.machine === "supervisor" && l.value === "stopped")).toBe(true);
    } finally {
      inspect.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
