// The `multifrost` command run as users run it: `node dist/cli/main.js …` as a subprocess (and once
// through `npm exec`), with a temporary registry and temporary tree and key files. Exit codes,
// output, JSON shapes, and no process left behind: every process a test starts (the CLI, `script`,
// services) and everything below it is SIGKILLed after the test, pass or fail.
import { spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fixture } from "./helpers/fixtures.js";
import { descendants, isAlive, startCaptured, waitFor, type CapturedRun } from "./helpers/processes.js";
import { serviceHarness } from "./helpers/services.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(root, "dist", "cli", "main.js");
const VERSION = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;


/** Every process a test started; after each test it and all its descendants are SIGKILLed. */
const started: ChildProcess[] = [];
/** Worker pids seen during a test: each must be gone when the test ends (checked by the tests, killed here). */
const seenWorkers = new Set<number>();

afterEach(async () => {
  for (const child of started.splice(0)) {
    const below = child.pid === undefined ? [] : descendants(child.pid);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "close");
    }
    for (const pid of below) killQuietly(pid);
  }
  for (const pid of seenWorkers) killQuietly(pid);
  seenWorkers.clear();
});

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function start(command: string, args: readonly string[], env: Record<string, string> = {}): CapturedRun {
  return startCaptured(command, args, env, started);
}

/** Runs `multifrost …` to its end. */
async function cli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = start(process.execPath, [MAIN, ...args], env);
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o700);
  return dir;
}

let dir = "";
beforeEach(() => {
  dir = tempDir("multifrost-cli-");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A tree file of two math workers, one in a nested supervisor. */
function mathTree(): string {
  const file = join(dir, "tree.json");
  const math = fixture("math-worker.mjs");
  writeFileSync(
    file,
    JSON.stringify({
      id: "root",
      children: [
        { id: "math", spawn: math },
        { id: "sub", children: [{ id: "inner", spawn: math }] },
      ],
    }),
  );
  return file;
}

/** The worker processes below the CLI once the tree is up (recorded so the test can check they are gone). */
async function workersBelow(cliPid: number, count: number): Promise<number[]> {
  let pids: number[] = [];
  await waitFor(() => (pids = descendants(cliPid)).length >= count, 10_000, `${count} worker processes`);
  for (const pid of pids) seenWorkers.add(pid);
  return pids;
}

describe("multifrost --help / --version", () => {
  it("prints the version and help for the program and every command, exit 0", async () => {
    const version = await cli(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["up", "services", "call", "keygen"]) expect(help.stdout).toContain(command);
    for (const command of ["up", "services", "call", "keygen"]) {
      const result = await cli([command, "--help"]);
      expect(result.code, command).toBe(0);
      expect(result.stdout, command).toContain(`Usage: multifrost ${command}`);
    }
  });

  it("a usage error (unknown command, unknown option, missing argument) exits 2", async () => {
    for (const args of [["frobnicate"], ["services", "--nope"], ["call", "only-a-service"], ["up"], []]) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr.length, args.join(" ")).toBeGreaterThan(0);
    }
  });

  it("runs as the package's bin through npm exec", () => {
    const result = spawnSync("npm", ["exec", "--", "multifrost", "--help"], { cwd: root, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false" } });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain("Usage: multifrost");
    expect(statSync(MAIN).mode & 0o111).not.toBe(0);
    expect(readFileSync(MAIN, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
});

describe("multifrost up", () => {
  it("starts the tree (with --health and --dashboard), logs transitions when not a TTY, SIGTERM stops it in order: exit 0, no process left", async () => {
    const run = start(process.execPath, [MAIN, "up", mathTree(), "--health", "0", "--dashboard"]);
    await waitFor(() => run.stdout().includes("started: root running (2 workers)"), 15_000, "the tree to start");
    const workers = await workersBelow(run.child.pid!, 2);
    expect(run.stdout()).toMatch(/^health: http:\/\/127\.0\.0\.1:\d+\/healthz/m);
    expect(run.stdout()).toMatch(/^\S+Z root\/math spawning -> connected \(ready\)$/m);
    const health = /^health: (http:\/\/127\.0\.0\.1:\d+)/m.exec(run.stdout())![1]!;
    const tree = (await (await fetch(`${health}/tree`)).json()) as { state: string };
    expect(tree.state).toBe("running");
    const dashboard = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/?)$/m.exec(run.stdout())?.[1];
    expect(dashboard).toBeDefined();
    expect((await fetch(dashboard!)).status).toBe(200);

    run.child.kill("SIGTERM");
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.stdout()).toContain("SIGTERM — stopping the tree…");
    // Reverse start order: the nested supervisor's worker stops before the first worker.
    const out = run.stdout();
    expect(out.indexOf("root/sub/inner connected -> stopping")).toBeLessThan(out.indexOf("root/math connected -> stopping"));
    expect(out).toContain("root stopping -> stopped");
    expect(workers.filter(isAlive)).toEqual([]);
  });

  it("Ctrl-C (SIGINT) stops the tree: exit 130, no process left", async () => {
    const run = start(process.execPath, [MAIN, "up", mathTree()]);
    await waitFor(() => run.stdout().includes("started:"), 15_000, "the tree to start");
    const workers = await workersBelow(run.child.pid!, 2);
    run.child.kill("SIGINT");
    expect(await run.exited).toEqual({ code: 130, signal: null });
    expect(run.stdout()).toContain("stopped: no process of the tree is left");
    expect(workers.filter(isAlive)).toEqual([]);
  });

  it("an invalid tree file: the loader's message (file:line:col, path, problem) on stderr, exit 2", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "id: root\nchildren:\n  - id: math\n    spawn: math.mjs\n    backof: 3\n");
    const result = await cli(["up", bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${bad}:5:5: root/math: unknown key 'backof' (did you mean 'backoff'?)`);
    expect(result.stdout).toBe("");

    const broken = join(dir, "broken.json");
    writeFileSync(broken, '{ "id": "root", ');
    const parse = await cli(["up", broken]);
    expect(parse.code).toBe(2);
    expect(parse.stderr).toMatch(new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1:\\d+: invalid JSON`));

    const missing = await cli(["up", join(dir, "nope.yaml")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no such file");
  });

  it("a tree that fails (restart intensity exceeded): the reason on stderr, exit 1, no process left", async () => {
    const file = join(dir, "crash.json");
    writeFileSync(
      file,
      JSON.stringify({ id: "root", intensity: 0, children: [{ id: "crash", spawn: fixture("crash-loop-worker.mjs"), env: { MF_EXIT_AFTER_MS: "400" } }] }),
    );
    const run = start(process.execPath, [MAIN, "up", file]);
    const workers = await workersBelow(run.child.pid!, 1);
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toMatch(/the tree failed: more than 0 restarts within 5000 ms \(last: crash, exit 1\)/);
    expect(workers.filter(isAlive)).toEqual([]);
  });

  it("on a TTY (a pseudo-terminal from script(1)): a live table redrawn in place; Ctrl-C exits 130", async () => {
    const tree = mathTree();
    // script gives the command a pseudo-terminal; -e returns the command's exit code. script runs the
    // command through $SHELL -c; `exec` makes the CLI replace that shell whichever shell it is (dash
    // forks, so a SIGINT meant for the CLI would otherwise reach the shell only).
    const run = start("script", ["-qfec", `exec ${process.execPath} ${MAIN} up ${tree}`, "/dev/null"]);
    const header = /PATH\s+STATE\s+PID\s+RESTARTS\s+CALLS\/S\s+P99\s+RTT\s+CPU\s+RSS/;
    await waitFor(() => header.test(run.stdout()) && /root\/sub\/inner\s+\S*connected/.test(run.stdout()), 15_000, "the live table");
    // Several frames: log-update erases the previous one (cursor up, erase line) to redraw in place.
    await waitFor(() => (run.stdout().match(/PATH\s+STATE/g) ?? []).length >= 3, 5_000, "redraws");
    expect(run.stdout()).toContain("\u001b[1A");
    expect(run.stdout()).toMatch(/root\/math\s+\S*connected\S*\s+\d+\s+0\s+/);
    const cliPid = descendants(run.child.pid!).find((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(`${process.execPath}\0${MAIN}\0`));
    expect(cliPid).toBeDefined();
    const workers = await workersBelow(cliPid!, 2);
    process.kill(cliPid!, "SIGINT");
    expect((await run.exited).code).toBe(130);
    expect(run.stdout()).toContain("stopped: no process of the tree is left");
    expect(workers.filter(isAlive)).toEqual([]);
  });
});

describe("multifrost services and call", () => {
  const services = serviceHarness("multifrost-cli-registry-");
  const env = (): Record<string, string> => ({ MULTIFROST_REGISTRY_DIR: services.registryDir });

  it("services lists the registry as a table and as JSON (alive, age); an empty registry says so", async () => {
    expect(await cli(["services"], env())).toMatchObject({ code: 0, stdout: `no services in ${join(services.registryDir, "services.json")}\n` });
    const service = await services.startService("svc-a", process.execPath, [fixture("supervised-worker.mjs")]);
    const table = await cli(["services"], env());
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+PID\s+PORT\s+STATUS\s+AGE\s+CURVE$/m);
    expect(table.stdout).toMatch(new RegExp(`^svc-a\\s+${service.process.pid}\\s+\\d+\\s+alive\\s+\\d+(ms|s)`, "m"));
    const json = await cli(["services", "--json"], env());
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { registry: string; services: Record<string, unknown>[] };
    expect(parsed.registry).toBe(join(services.registryDir, "services.json"));
    expect(parsed.services).toEqual([
      { id: "svc-a", pid: service.process.pid, port: expect.any(Number), started: expect.any(String), alive: true, ageMs: expect.any(Number) },
    ]);
  });

  it("services shows a stale entry (its owner is dead) with --registry-dir", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    const registryDir = tempDir("multifrost-cli-stale-");
    try {
      writeFileSync(join(registryDir, "services.json"), JSON.stringify({ old: { port: 4242, pid: dead, started: "2020-01-01T00:00:00.000Z" } }), { mode: 0o600 });
      const json = JSON.parse((await cli(["services", "--json", "--registry-dir", registryDir])).stdout) as { services: { alive: boolean; ageMs: number }[] };
      expect(json.services).toEqual([{ id: "old", pid: dead, port: 4242, started: "2020-01-01T00:00:00.000Z", alive: false, ageMs: expect.any(Number) }]);
      expect(json.services[0]!.ageMs).toBeGreaterThan(365 * 24 * 3600 * 1000);
      expect((await cli(["services", "--registry-dir", registryDir])).stdout).toMatch(/^old\s+\d+\s+4242\s+stale\s+\d+d/m);
    } finally {
      rmSync(registryDir, { recursive: true, force: true });
    }
  });

  it("call prints the result as JSON (exit 0); a remote error goes to stderr (exit 1); an unknown service exits 3", async () => {
    await services.startService("svc-a", process.execPath, [fixture("supervised-worker.mjs")]);
    expect(await cli(["call", "svc-a", "add", "2", "3"], env())).toEqual({ code: 0, stdout: "5\n", stderr: "" });
    const failed = await cli(["call", "svc-a", "fail", "boom"], env());
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe("");
    expect(failed.stderr).toBe("multifrost: svc-a.fail raised TypeError: boom\n");
    const withStack = await cli(["call", "svc-a", "fail", "boom", "--stack"], env());
    expect(withStack.stderr).toContain("supervised-worker.mjs");
    const missing = await cli(["call", "svc-a", "noSuchFunction"], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("not found");
    const unknown = await cli(["call", "nobody", "add", "1", "2"], env());
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("no live service 'nobody'");
    const late = await cli(["call", "svc-a", "sleep", "3000", "--timeout", "200"], env());
    expect(late.code).toBe(1);
    expect(late.stderr).toContain("timed out after 200ms");
    // --registry-dir instead of the environment variable.
    expect((await cli(["call", "svc-a", "add", "1", "1", "--registry-dir", services.registryDir])).stdout).toBe("2\n");
  });

  it("call --curve reaches a CURVE service with a client key pair made by keygen; services marks it", async () => {
    const keys = join(dir, "keys");
    expect((await cli(["keygen", "server", "--dir", keys])).code).toBe(0);
    const made = await cli(["keygen", "client", "--dir", keys, "--json"]);
    expect(made.code, made.stderr).toBe(0);
    const client = JSON.parse(made.stdout) as { publicKey: string };
    await services.startService("secure", process.execPath, [fixture("curve-service.mjs")], {
      MULTIFROST_KEYS_DIR: keys,
      MF_CURVE_NAME: "server",
      MF_AUTHORIZED: client.publicKey,
    });
    expect((await cli(["services"], env())).stdout).toMatch(/^secure\s+\d+\s+\d+\s+alive\s+\S+\s+yes$/m);
    expect(await cli(["call", "secure", "add", "20", "22", "--curve", "client"], { ...env(), MULTIFROST_KEYS_DIR: keys })).toEqual({ code: 0, stdout: "42\n", stderr: "" });
    const refused = await cli(["call", "secure", "add", "1", "2"], env());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/curve/i);
  });

  it("call arguments are JSON where they parse, else strings; BigInt and bytes print readably both ways", async () => {
    await services.startService("math", process.execPath, [fixture("math-worker.mjs")]);
    const call = async (...args: string[]): Promise<string> => {
      const result = await cli(["call", "math", ...args], env());
      expect(result.code, result.stderr).toBe(0);
      return result.stdout;
    };
    expect(await call("typeOf", "hello")).toBe('"string"\n');
    expect(await call("typeOf", '"5"')).toBe('"string"\n');
    expect(await call("typeOf", "5")).toBe('"number"\n');
    expect(await call("typeOf", "[1,2]")).toBe('"array"\n');
    expect(await call("typeOf", "null")).toBe('"null"\n');
    expect(await call("typeOf", '{"$bin":"AAEC"}')).toBe('"bytes"\n');
    expect(await call("echo", '{"a":[1,true,"x"]}')).toBe('{\n  "a": [\n    1,\n    true,\n    "x"\n  ]\n}\n');
    expect(await call("echo", "12345678901234567890n")).toBe('"12345678901234567890n"\n');
    expect(await call("echo", '{"$bin":"AAEC/w=="}')).toBe('{\n  "$bin": "AAEC/w=="\n}\n');
    expect(await call("nothing")).toBe("null\n");
  });
});

describe("multifrost keygen", () => {
  it("writes a CURVE key pair, prints the public key and the files; refuses to overwrite without --force", async () => {
    const keys = join(dir, "keys");
    const made = await cli(["keygen", "svc", "--dir", keys]);
    expect(made.code).toBe(0);
    const publicKey = readFileSync(join(keys, "svc.pub"), "utf8").trim();
    expect(publicKey).toMatch(/^.{40}$/);
    expect(made.stdout).toBe(`public key:  ${publicKey}\npublic file: ${join(keys, "svc.pub")}\nsecret file: ${join(keys, "svc.key")} (keep it secret)\n`);
    expect(statSync(join(keys, "svc.key")).mode & 0o777).toBe(0o600);

    const again = await cli(["keygen", "svc", "--dir", keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("--force");
    expect(readFileSync(join(keys, "svc.pub"), "utf8").trim()).toBe(publicKey);

    const forced = await cli(["keygen", "svc", "--dir", keys, "--force", "--json"]);
    expect(forced.code).toBe(0);
    const json = JSON.parse(forced.stdout) as { name: string; publicKey: string; publicFile: string; secretFile: string };
    expect(json).toEqual({ name: "svc", publicKey: expect.stringMatching(/^.{40}$/), publicFile: join(keys, "svc.pub"), secretFile: join(keys, "svc.key") });
    expect(json.publicKey).not.toBe(publicKey);

    const defaults = await cli(["keygen"], { MULTIFROST_KEYS_DIR: keys });
    expect(defaults.code).toBe(0);
    expect(existsSync(join(keys, "multifrost.pub"))).toBe(true);

    const invalid = await cli(["keygen", "../escape", "--dir", keys]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("a key name must be");
  });
});
