// The lean worker entry `multifrost/child` is a bundle (scripts/build-child.mjs) with its own copy
// of the worker's modules. These tests hold it to one process-wide identity with `multifrost`:
// one ChildWorker class, the same error classes, one call context behind `this.call` /
// `currentCall()`, one ZAP handler. They run the built package (dist/), as users get it.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { curveKeyPair } from "../src/index.js";
import { fixture, workerTracker } from "./helpers/fixtures.js";
import { serviceHarness } from "./helpers/services.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const workers = workerTracker();
afterEach(() => workers.stopAll());

/** Runs an ES module snippet in a fresh node inside this package (so "multifrost" is this build); returns its stdout. */
function runModule(code: string, env: Record<string, string> = {}): string {
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim();
}

describe("multifrost/child, the bundled worker entry", () => {
  it("is one file next to the shared errors module: no other module of ours is loaded", () => {
    const dir = mkdtempSync(join(tmpdir(), "multifrost-lean-"));
    try {
      const log = join(dir, "modules.log");
      const run = spawnSync(process.execPath, ["--import", fixture("module-log-hooks.mjs"), "--input-type=module", "-e", 'await import("multifrost/child")'], {
        cwd: ROOT,
        env: { ...process.env, MF_MODULE_LOG: log },
        encoding: "utf8",
      });
      expect(run.status, run.stderr).toBe(0);
      const dist = pathToFileURL(join(ROOT, "dist")).href + "/";
      const ours = readFileSync(log, "utf8")
        .split("\n")
        .filter((url) => url.startsWith(dist))
        .map((url) => url.slice(dist.length));
      expect(ours.sort()).toEqual(["child-entry.js", "errors.js"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exports the same ChildWorker and currentCall as multifrost, and its errors are multifrost's classes", () => {
    const out = runModule(`
      import { ChildWorker, currentCall, InvalidArgumentError, MultifrostError } from "multifrost";
      import * as lean from "multifrost/child";
      class W extends lean.ChildWorker {}
      let error;
      try { new W({ maxArgs: -1 }); } catch (e) { error = e; }
      console.log(JSON.stringify({
        sameClass: lean.ChildWorker === ChildWorker,
        name: lean.ChildWorker.name,
        sameCurrentCall: lean.currentCall === currentCall,
        invalid: error instanceof InvalidArgumentError,
        base: error instanceof MultifrostError,
        code: error?.code,
      }));
    `);
    expect(JSON.parse(out)).toEqual({ sameClass: true, name: "ChildWorker", sameCurrentCall: true, invalid: true, base: true, code: "ERR_INVALID_ARGUMENT" });
  });

  it("can be required from CommonJS, giving the same class as require('multifrost')", () => {
    const run = spawnSync(process.execPath, ["-e", 'const lean = require("multifrost/child"); console.log(typeof lean.ChildWorker, lean.ChildWorker === require("multifrost").ChildWorker)'], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe("function true");
  });

  describe("this.call and currentCall() in a worker", () => {
    const cases: [string, Record<string, string>][] = [
      ["importing multifrost/child", { MF_ENTRY: "multifrost/child" }],
      ["importing multifrost", { MF_ENTRY: "multifrost" }],
      ["whose class comes from multifrost/child and currentCall from multifrost", { MF_ENTRY: "multifrost/child", MF_CALL_ENTRY: "multifrost" }],
      ["whose class comes from multifrost and currentCall from multifrost/child", { MF_ENTRY: "multifrost", MF_CALL_ENTRY: "multifrost/child" }],
    ];
    for (const [name, env] of cases) {
      it(`see the running call, sync and async, ${name}`, async () => {
        const worker = workers.spawn(fixture("lean-call-worker.mjs"), "node", { env });
        const handle = worker.handle();
        await handle.start();
        const sync = (await handle.call.whoSync()) as { fn: string; id: string; helper: string };
        expect(sync.fn).toBe("whoSync");
        expect(sync.helper).toBe(sync.id);
        const [a, b] = (await Promise.all([handle.call.whoAsync(), handle.call.whoAsync()])) as { fn: string; id: string; helper: string }[];
        expect(a!.fn).toBe("whoAsync");
        expect(a!.helper).toBe(a!.id);
        expect(b!.helper).toBe(b!.id);
        expect(a!.id).not.toBe(b!.id);
      });
    }
  });

  it("this.call and currentCall() agree across two installed copies of the package (the call context is the process's)", async () => {
    const copy = mkdtempSync(join(tmpdir(), "multifrost-copy-"));
    try {
      cpSync(join(ROOT, "dist"), join(copy, "dist"), { recursive: true });
      cpSync(join(ROOT, "package.json"), join(copy, "package.json"));
      symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"), "dir");
      const otherCurrentCall = join(copy, "dist", "child-entry.js");
      const worker = workers.spawn(fixture("lean-call-worker.mjs"), "node", { env: { MF_ENTRY: "multifrost/child", MF_CALL_ENTRY: otherCurrentCall } });
      const handle = worker.handle();
      await handle.start();
      for (const fn of ["whoSync", "whoAsync"] as const) {
        const seen = (await handle.call[fn]()) as { fn: string; id: string; helper: string };
        expect(seen.fn).toBe(fn);
        expect(seen.helper).toBe(seen.id);
      }
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  describe("with the package's parent side in the same process", () => {
    const harness = serviceHarness("mf-lean-zap-");

    it("a CURVE service from multifrost/child can spawn workers with multifrost: one ZAP handler admits both", async () => {
      const server = curveKeyPair();
      const client = curveKeyPair();
      await harness.startService("lean-relay", process.execPath, [fixture("lean-zap-service.mjs")], {
        MF_CURVE_PUBLIC: server.publicKey,
        MF_CURVE_SECRET: server.secretKey,
      });
      const worker = await harness.connect("lean-relay", 5000, { curve: client });
      await worker.start();
      expect(await worker.call.addViaSpawned(2, 3)).toBe(5);
    });
  });
});
