import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { jsonlInspector, pool, supervise, supervisor, worker, type InspectionRecord } from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";

const MATH = fixture("math-worker.mjs");
const quiet = { onOutput: () => {} };
const fastBackoff = { minMs: 20, maxMs: 200, jitter: 0 };

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind by inspection tests");
});

describe("inspection names actors by their tree path", () => {
  it("the JSONL stream of a tree names root/… paths, across a restart and pool resizes (system ids stay unique)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-inspect-"));
    const file = join(dir, "trace.jsonl");
    const inspect = jsonlInspector(file);
    const tree = supervise(
      {
        id: "root",
        children: [
          worker({ id: "math", spawn: MATH, backoff: fastBackoff, ...quiet }),
          supervisor({ id: "sub", children: [worker({ id: "inner", spawn: MATH, ...quiet })] }),
          pool({ id: "p", spawn: MATH, size: 2, maxChildren: 3, ...quiet }),
        ],
      },
      { inspect },
    );
    try {
      await tree.start();
      const math = tree.worker("math");
      const pid = math.pid!;
      process.kill(pid, "SIGKILL");
      await waitFor(() => math.state === "connected" && math.pid !== pid, 5000, "math restarted");
      const p = tree.pool("p");
      await p.resize(1);
      await p.resize(3);
      await tree.stop();
      inspect.close();
      const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as InspectionRecord);
      const paths = new Set(lines.map((line) => line.path));
      for (const path of ["root", "root/math", "root/sub", "root/sub/inner", "root/p", "root/p/p-1", "root/p/p-2", "root/p/p-3", "root/p/p-4"]) {
        expect(paths, path).toContain(path);
      }
      // Every actor of the tree has a path; invoked actors are named under their machine's.
      expect(lines.filter((line) => line.path === undefined)).toEqual([]);
      expect([...paths].some((path) => path?.startsWith("root/math/"))).toBe(true);
      expect(lines.some((l) => l.path === "root/math" && l.type === "@xstate.snapshot" && JSON.stringify(l.value).includes("restarting"))).toBe(true);
      // Events from the worker's invoked actors (open, ping, close) name them under its path.
      expect(lines.some((l) => l.type === "@xstate.event" && l.path === "root/math" && l.sourcePath?.startsWith("root/math/"))).toBe(true);
    } finally {
      await tree.stop();
      inspect.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a local WebSocket server (what @statelyai/inspect/server runs) receives a tree's events named by path; the parent then exits by itself", async () => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    const messages: Array<{ type?: string; name?: string; sessionId?: string }> = [];
    server.on("connection", (socket) => socket.on("message", (data) => messages.push(JSON.parse(String(data)) as (typeof messages)[number])));
    try {
      const parent = spawn(process.execPath, [fixture("ws-inspected-parent.mjs")], {
        env: { ...process.env, MF_WS_PORT: String((server.address() as AddressInfo).port), MF_MATH: MATH },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      parent.stdout.on("data", (chunk: Buffer) => (output += String(chunk)));
      parent.stderr.on("data", (chunk: Buffer) => (output += String(chunk)));
      const exit = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => {
          parent.kill("SIGKILL");
          reject(new Error(`the inspected parent did not exit by itself within 10 s; output: ${output}`));
        }, 10_000);
        parent.on("exit", (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      expect(output).toContain("done 5");
      expect(exit).toBe(0);
      const names = new Set(messages.filter((m) => m.type === "@xstate.actor").map((m) => m.name));
      expect(names).toContain("root");
      expect(names).toContain("root/math");
      expect(messages.some((m) => m.type === "@xstate.snapshot")).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
