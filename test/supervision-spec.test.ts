import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { splitCommandLine } from "../src/actors/command-line.js";
import { InvalidArgumentError } from "../src/errors.js";
import { checkSupervisor, checkTree, resolveChild, SpecError } from "../src/supervision/check-spec.js";
import { loadTree, loadTreeText } from "../src/supervision/load-tree.js";
import { pool, supervisor, worker, type SupervisorSpec, type WorkerSpec } from "../src/supervision/spec.js";

/** The message checkTree throws for `spec`, or "" when it passes. */
function problems(spec: unknown): string {
  try {
    checkTree(spec);
    return "";
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as Error).message;
  }
}

/** A tree root/pipeline/fetch with `fetch` replaced by the given fields. */
function treeWithFetch(fields: Record<string, unknown>): unknown {
  return {
    id: "root",
    children: [{ id: "pipeline", children: [{ id: "fetch", spawn: "fetch.js", ...fields }] }],
  };
}

describe("checkTree", () => {
  it("accepts a tree written with the helpers and returns it", () => {
    const tree = supervisor({
      id: "root",
      strategy: "rest_for_one",
      intensity: 5,
      periodMs: 10_000,
      children: [
        worker({ id: "db", connect: "db-service", registryDir: "/tmp/reg", idempotent: true }),
        pool({ id: "cpu", spawn: "cpu.py", executable: ["python3", "-u"], size: 2, maxChildren: 4, select: "least-busy", period: 1000 }),
        supervisor({
          id: "pipeline",
          children: [
            worker({
              id: "fetch",
              spawn: "fetch.js",
              args: ["--fast"],
              env: { MODE: "test" },
              backoff: { minMs: 50, maxMs: 1000 },
              circuitBreaker: { failureRate: 0.5, resetTimeoutMs: Infinity },
              heartbeatInterval: 0,
              defaultTimeoutMs: Infinity,
              onOutput: () => undefined,
            }),
          ],
        }),
      ],
    });
    expect(checkTree(tree)).toBe(tree);
  });

  it("rejects a misspelt key with the path and a suggestion", () => {
    expect(problems(treeWithFetch({ backof: { minMs: 1 } }))).toBe("root/pipeline/fetch: unknown key 'backof' (did you mean 'backoff'?)");
    expect(problems({ id: "root", stratgy: "one_for_all", children: [] })).toBe("root: unknown key 'stratgy' (did you mean 'strategy'?)");
    expect(problems(treeWithFetch({ heartbeatIntervall: 5 }))).toBe(
      "root/pipeline/fetch: unknown key 'heartbeatIntervall' (did you mean 'heartbeatInterval'?)",
    );
    expect(problems({ id: "root", children: [{ id: "p", spawn: "w.js", max_children: 3, size: 1 }] })).toBe(
      "root/p: unknown key 'max_children' (did you mean 'maxChildren'?)",
    );
  });

  it("a pool that follows a service takes neither spawn/connect nor a size", () => {
    expect(checkTree({ id: "root", children: [{ id: "math", service: "math", select: "least-busy", idempotent: true }] })).toBeDefined();
    expect(resolveChild({ id: "math", service: "math" }, "root/math").type).toBe("pool");
    expect(problems({ id: "root", children: [{ id: "math", service: "math", size: 2, spawn: "w.js" }] }).split("\n")).toEqual([
      "root/math: 'spawn' does not apply to a pool that follows a service: its members are the service's registered instances",
      "root/math: 'size' does not apply to a pool that follows a service: its members are the service's registered instances",
    ]);
    expect(problems({ id: "root", children: [{ id: "math", type: "pool", service: 5 }] })).toMatch(/root\/math: service must be/);
  });

  it("rejects unknown keys inside backoff and circuitBreaker", () => {
    expect(problems(treeWithFetch({ backoff: { minMx: 10 } }))).toBe("root/pipeline/fetch: backoff: unknown key 'minMx' (did you mean 'minMs'?)");
    expect(problems(treeWithFetch({ circuitBreaker: { resetTimout: 10 } }))).toBe(
      "root/pipeline/fetch: circuitBreaker: unknown key 'resetTimout' (did you mean 'resetTimeout'?)",
    );
  });

  it("says which kind of child takes a key that another kind was given", () => {
    expect(problems(treeWithFetch({ select: "least-busy" }))).toBe("root/pipeline/fetch: unknown key 'select' for a worker (a pool takes it)");
  });

  it("type-checks every field and names its path", () => {
    expect(problems(treeWithFetch({ executable: 3 }))).toBe(
      "root/pipeline/fetch: executable must be a command (a non-empty string) or a non-empty array of strings, got 3",
    );
    expect(problems(treeWithFetch({ args: ["--a", 2] }))).toBe("root/pipeline/fetch: args[1] must be a string, got 2");
    expect(problems(treeWithFetch({ args: "--a" }))).toBe('root/pipeline/fetch: args must be an array of strings, got "--a"');
    expect(problems(treeWithFetch({ env: { HOME: 1 } }))).toBe("root/pipeline/fetch: env.HOME must be a string, got 1");
    expect(problems(treeWithFetch({ heartbeatTimeoutMs: -1 }))).toBe("root/pipeline/fetch: heartbeatTimeoutMs must be a positive finite number of ms, got -1");
    expect(problems(treeWithFetch({ heartbeatIntervalMs: Infinity }))).toBe(
      "root/pipeline/fetch: heartbeatIntervalMs must be a finite number of ms ≥ 0, got Infinity",
    );
    expect(problems(treeWithFetch({ defaultTimeoutMs: "30s" }))).toBe('root/pipeline/fetch: defaultTimeoutMs must be a positive number of ms or Infinity, got "30s"');
    expect(problems(treeWithFetch({ idempotent: "yes" }))).toBe('root/pipeline/fetch: idempotent must be true or false, got "yes"');
    expect(problems(treeWithFetch({ restart: "always" }))).toBe(
      'root/pipeline/fetch: restart must be "permanent", "transient" or "temporary", got "always"',
    );
    expect(problems(treeWithFetch({ backoff: { minMs: 500, maxMs: 100 } }))).toBe("root/pipeline/fetch: backoff.maxMs (100) must be ≥ minMs (500)");
    expect(problems(treeWithFetch({ onOutput: "console" }))).toBe(
      'root/pipeline/fetch: onOutput must be a function (it cannot be given in a JSON or YAML file), got "console"',
    );
    expect(problems({ id: "root", strategy: "one-for-one", children: [] })).toBe(
      'root: strategy must be "one_for_one", "one_for_all" or "rest_for_one", got "one-for-one"',
    );
  });

  it("rejects null children and a children list that is not an array", () => {
    expect(problems({ id: "root", children: null })).toBe("root: children must be an array of child specs, got null");
    expect(problems({ id: "root", children: [{ id: "a", spawn: "a.js" }, null] })).toBe("root/children[1]: a child spec must be an object, got null");
    expect(problems(null)).toBe("(root): a tree must be a supervisor spec (an object with id and children), got null");
  });

  it("lists every problem, one a line", () => {
    expect(problems(treeWithFetch({ executable: 3, retries: -1 })).split("\n")).toHaveLength(2);
  });

  it("requires ids unique within a supervisor, non-empty and without '/'", () => {
    const duplicate = { id: "root", children: [{ id: "a", spawn: "a.js" }, { id: "a", connect: "svc" }] };
    expect(problems(duplicate)).toBe("root: two children have the id 'a' (children[0] and children[1]); ids must be unique within a supervisor");
    expect(problems({ id: "root", children: [{ id: "", spawn: "a.js" }] })).toBe(`root/children[0]: id must be a non-empty string without '/', got ""`);
    expect(problems({ id: "root", children: [{ id: "a/b", spawn: "a.js" }] })).toBe(`root/children[0]: id must be a non-empty string without '/', got "a/b"`);
    // The same id in two different supervisors is fine: paths tell them apart.
    expect(problems({ id: "root", children: [{ id: "a", children: [{ id: "x", spawn: "x.js" }] }, { id: "b", children: [{ id: "x", spawn: "x.js" }] }] })).toBe("");
  });

  it("refuses the options a supervisor sets itself, saying why", () => {
    expect(problems(treeWithFetch({ autoRestart: true }))).toMatch(/^root\/pipeline\/fetch: 'autoRestart' cannot be set in a spec: the supervisor restarts its children itself/);
    for (const key of ["maxRestartAttempts", "inspect", "parentActor", "registry", "name"]) {
      expect(problems(treeWithFetch({ [key]: 1 }))).toMatch(new RegExp(`^root/pipeline/fetch: '${key}' cannot be set in a spec: `));
    }
  });

  it("needs exactly one of spawn and connect, and mode-specific keys only in their mode", () => {
    expect(problems({ id: "root", children: [{ id: "w" }] })).toBe("root/w: give exactly one of spawn (a script to run) or connect (a registered service id)");
    expect(problems({ id: "root", children: [{ id: "w", spawn: "a.js", connect: "svc" }] })).toBe("root/w: give exactly one of spawn (a script to run) or connect (a registered service id), not both");
    expect(problems({ id: "root", children: [{ id: "w", connect: "svc", args: ["x"] }] })).toBe("root/w: 'args' applies to spawned workers only; this one connects to a service");
  });

  it("checks pool sizes and the root's kind", () => {
    expect(problems({ id: "root", children: [{ id: "p", spawn: "a.js", size: 3, maxChildren: 2 }] })).toBe("root/p: maxChildren (2) must be ≥ size (3)");
    expect(problems({ id: "root", children: [{ id: "p", type: "wroker", spawn: "a.js" }] })).toBe(
      `root/p: type must be "worker", "pool" or "supervisor", got "wroker" (did you mean 'worker'?)`,
    );
    expect(problems({ id: "w", spawn: "a.js" })).toBe("w: the root of a tree must be a supervisor (with children), not a worker");
  });

  it("names the source when one is given", () => {
    expect(() => checkTree(treeWithFetch({ backof: {} }), "tree.json")).toThrow("tree.json: root/pipeline/fetch: unknown key 'backof' (did you mean 'backoff'?)");
  });

  it("resolveChild and checkSupervisor check one level and keep their old contracts", () => {
    const spec: WorkerSpec = { id: "w", spawn: "a.js" };
    expect(resolveChild(spec, "root/w")).toEqual({ type: "worker", spec });
    expect(resolveChild({ id: "p", spawn: "a.js", size: 2 }, "root/p").type).toBe("pool");
    expect(() => resolveChild({ id: "w", spawn: "a.js", stratgy: 1 }, "root/w")).toThrow(SpecError);
    // Children's own specs are checked when their nodes are made, not here.
    expect(resolveChild({ id: "s", children: [{ id: "x", bogus: 1 }] }, "root/s").type).toBe("supervisor");
    expect(() => checkSupervisor({ id: "root", children: [{ id: "a" }, { id: "a" }] }, "root")).toThrow(/two children have the id 'a'/);
  });
});

describe("loadTree", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "multifrost-tree-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, text: string): string {
    const file = join(dir, name);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  it("reads a JSON tree and resolves relative spawn, cwd and ./executable against the file's folder", async () => {
    write("trees/workers/fetch.js", "");
    const file = write(
      "trees/tree.json",
      JSON.stringify({
        id: "root",
        children: [
          { id: "fetch", spawn: "workers/fetch.js", cwd: "workers", executable: "./venv/bin/python -u" },
          { id: "mod", spawn: "-m pkg.worker", executable: ["../bin/py"] },
          { id: "abs", spawn: "/opt/w.js", executable: "python3" },
        ],
      }),
    );
    const tree = await loadTree(file);
    const [fetch, mod, abs] = tree.children as WorkerSpec[];
    expect(fetch!.spawn).toBe(join(dir, "trees/workers/fetch.js"));
    expect(fetch!.cwd).toBe(join(dir, "trees/workers"));
    expect(fetch!.executable).toBe(`${join(dir, "trees/venv/bin/python")} -u`);
    expect(mod!.spawn).toBe("-m pkg.worker");
    expect(mod!.executable).toEqual([join(dir, "bin/py")]);
    expect(abs).toEqual({ id: "abs", spawn: "/opt/w.js", executable: "python3" });
  });

  it("keeps a script's arguments and quotes a resolved path with spaces so ParentWorker splits it right", () => {
    const base = join(dir, "my trees");
    const tree = loadTreeText("id: root\nchildren:\n  - id: w\n    spawn: w.py --port 1\n", "tree.yaml", base);
    const spawn = (tree.children[0] as WorkerSpec).spawn!;
    expect(splitCommandLine(spawn)).toEqual([join(base, "w.py"), "--port", "1"]);
  });

  it("reads a YAML tree, with anchors and merge keys for shared settings", async () => {
    const file = write(
      "tree.yaml",
      [
        "id: root",
        "strategy: one_for_all",
        "x-defaults: &defaults",
        "  heartbeatIntervalMs: 1000",
        "children:",
        "  - id: a",
        "    spawn: a.js",
        "    <<: *defaults",
      ].join("\n"),
    );
    // x-defaults is not a supervisor key: the file must say so.
    await expect(loadTree(file)).rejects.toThrow(`${file}:3:1: root: unknown key 'x-defaults'`);
    write("tree.yaml", ["id: root", "children:", "  - &a { id: a, spawn: a.js, heartbeatIntervalMs: 1000, defaultTimeoutMs: .inf }", "  - { <<: *a, id: b }"].join("\n"));
    const tree = await loadTree(file);
    expect(tree.children).toEqual([
      { id: "a", spawn: join(dir, "a.js"), heartbeatIntervalMs: 1000, defaultTimeoutMs: Infinity },
      { id: "b", spawn: join(dir, "a.js"), heartbeatIntervalMs: 1000, defaultTimeoutMs: Infinity },
    ]);
  });

  it("names the file and the line:column of a misspelt key", async () => {
    const yamlFile = write("tree.yml", ["id: root", "children:", "  - id: pipeline", "    stratgy: one_for_all", "    children: []"].join("\n"));
    await expect(loadTree(yamlFile)).rejects.toThrow(`${yamlFile}:4:5: root/pipeline: unknown key 'stratgy' (did you mean 'strategy'?)`);
    const nested = write("nested.yaml", ["id: root", "children:", "  - id: w", "    spawn: w.js", "    backoff:", "      minMx: 1"].join("\n"));
    await expect(loadTree(nested)).rejects.toThrow(`${nested}:6:7: root/w: backoff: unknown key 'minMx' (did you mean 'minMs'?)`);
    const jsonFile = write("tree.json", '{\n  "id": "root",\n  "children": [\n    { "id": "fetch", "spawn": "f.js", "executable": 3 }\n  ]\n}\n');
    await expect(loadTree(jsonFile)).rejects.toThrow(`${jsonFile}:4:53: root/fetch: executable must be`);
  });

  it("names the file and position of a parse error", async () => {
    const jsonFile = write("bad.json", '{\n  "id": "root",\n  "children": [,]\n}');
    await expect(loadTree(jsonFile)).rejects.toThrow(new RegExp(`^${escape(jsonFile)}:3:16: invalid JSON: `));
    const yamlFile = write("bad.yaml", "id: root\nchildren: [a, b\n");
    await expect(loadTree(yamlFile)).rejects.toThrow(new RegExp(`^${escape(yamlFile)}:\\d+:\\d+: invalid YAML: `));
    const trailing = write("trailing.json", '{ "id": "root",\n  "children": [], }');
    await expect(loadTree(trailing)).rejects.toThrow(`${trailing}:2:19: invalid JSON: Expected double-quoted property name`);
    const duplicate = write("dup.json", '{ "id": "root",\n  "id": "again", "children": [] }');
    await expect(loadTree(duplicate)).rejects.toThrow(`${duplicate}:2:3: a key appears twice in the same object`);
  });

  it("says clearly when the file is missing or of an unknown kind", async () => {
    const missing = join(dir, "nope.yaml");
    await expect(loadTree(missing)).rejects.toThrow(`loadTree(): cannot read the tree file ${missing} (${missing}): no such file`);
    await expect(loadTree(join(dir, "tree.toml"))).rejects.toThrow("a tree file must end in .json, .yaml or .yml");
  });

  it("returns a spec supervise() accepts as it is", async () => {
    const file = write("t.json", JSON.stringify({ id: "root", children: [{ id: "w", spawn: "w.js" }] }));
    const tree: SupervisorSpec = await loadTree(file);
    expect(checkTree(tree)).toBe(tree);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
