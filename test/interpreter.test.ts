// spawn(script) without an executable: the script's extension picks the interpreter.
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidArgumentError, ParentWorker } from "../src/index.js";
import { defaultInterpreter } from "../src/parent/interpreter.js";
import { fixture } from "./helpers/fixtures.js";

describe("defaultInterpreter", () => {
  it("runs .py with $MULTIFROST_PYTHON (several words allowed), else python3", () => {
    expect(defaultInterpreter("worker.py", {})).toEqual(["python3"]);
    expect(defaultInterpreter("/srv/w/Worker.PY", { MULTIFROST_PYTHON: "" })).toEqual(["python3"]);
    expect(defaultInterpreter("worker.py", { MULTIFROST_PYTHON: "/opt/py/bin/python3.12" })).toEqual(["/opt/py/bin/python3.12"]);
    expect(defaultInterpreter("worker.py", { MULTIFROST_PYTHON: "uv run python" })).toEqual(["uv", "run", "python"]);
    expect(defaultInterpreter("worker.py --verbose", {})).toEqual(["python3"]); // the script's first word decides
  });

  it("runs .mjs, .js, .cjs (and scripts without an extension, as v4 did) with this Node binary", () => {
    for (const script of ["w.mjs", "./dir/w.js", "w.cjs", "bin/worker", "w.mjs --flag"]) {
      expect(defaultInterpreter(script, {})).toEqual([process.execPath]);
    }
  });

  it("refuses .ts, .mts and .cts with a message that says what to do", () => {
    for (const script of ["w.ts", "w.mts", "src/w.cts"]) {
      expect(() => defaultInterpreter(script, {})).toThrow(InvalidArgumentError);
      expect(() => defaultInterpreter(script, {})).toThrow(/pass one, e\.g\. ParentWorker\.spawn\(".*", "npx tsx"\), or compile it to JavaScript/);
    }
  });
});

describe("ParentWorker.spawn without an executable", () => {
  const workers: ParentWorker[] = [];
  const savedPython = process.env.MULTIFROST_PYTHON;
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()));
    if (savedPython === undefined) delete process.env.MULTIFROST_PYTHON;
    else process.env.MULTIFROST_PYTHON = savedPython;
  });

  it("throws InvalidArgumentError at once for a .ts script, and an explicit executable always wins", () => {
    expect(() => ParentWorker.spawn("worker.ts")).toThrow(/"npx tsx"/);
    expect(() => ParentWorker.spawn("worker.ts", "npx tsx")).not.toThrow();
    expect(() => ParentWorker.spawn("worker.ts", undefined, {})).toThrow(InvalidArgumentError);
  });

  it("runs a .mjs worker with node", async () => {
    const worker = ParentWorker.spawn(fixture("math-worker.mjs"));
    workers.push(worker);
    await worker.start();
    expect(await worker.call.add(1, 2)).toBe(3);
  });

  it("runs a .py worker with $MULTIFROST_PYTHON", async () => {
    process.env.MULTIFROST_PYTHON = savedPython ?? "/usr/bin/python3";
    const pythonSrc = fileURLToPath(new URL("../python/src", import.meta.url));
    const worker = ParentWorker.spawn(fixture("python-lib/interop_worker.py"), undefined, {
      onOutput: () => undefined,
      env: { PYTHONPATH: [pythonSrc, process.env.PYTHONPATH].filter(Boolean).join(":") },
    });
    workers.push(worker);
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
  });
});
