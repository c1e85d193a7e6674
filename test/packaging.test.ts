// What a user gets from npm: the file list of the package, a fresh clone's `npm pack` (prepack
// builds), and the packed tarball installed into a fresh project, loaded with `import` and `require`.
// No network: dependencies come from this repository's node_modules (see installTarball).
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface PackResult {
  filename: string;
  files: { path: string }[];
}

function run(command: string, args: readonly string[], cwd: string): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false" } });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} (in ${cwd}) failed with ${result.status}:\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

function pack(cwd: string, args: readonly string[]): PackResult {
  const { stdout } = run("npm", ["pack", "--json", ...args], cwd);
  // npm prints lifecycle output (prepack's tsc) before the JSON; the JSON is the last top-level array.
  const start = stdout.lastIndexOf("\n[") >= 0 ? stdout.lastIndexOf("\n[") + 1 : stdout.indexOf("[");
  const [result] = JSON.parse(stdout.slice(start)) as PackResult[];
  if (!result) throw new Error(`npm pack printed no result:\n${stdout}`);
  return result;
}

/** Paths that must never reach users: tests, fixtures, benchmarks, the Python side, build droppings. */
const FORBIDDEN = [
  /^test\//,
  /^tests?-results\//,
  /^bench\//,
  /^examples\//,
  /^scripts\//,
  /^python\//,
  /^node_modules\//,
  /(^|\/)fixtures\//,
  /(^|\/)\.venv/,
  /(^|\/)target\//,
  /\.test\.[cm]?[jt]s$/,
  /^tsconfig/,
  /^vitest\.config/,
];

describe("the npm package", () => {
  it("lists what a user needs and nothing of the repository's own machinery (this checkout, npm pack --dry-run)", () => {
    const { files } = pack(root, ["--dry-run", "--ignore-scripts"]);
    const paths = files.map((file) => file.path);
    for (const needed of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/machines/index.js", "dist/machines/index.d.ts", "docs/api.md", "docs/wire.md", "assets/mermaid.min.js", "assets/mermaid.LICENSE", "assets/machines.json", "docs/cli.md"]) {
      expect(paths, needed).toContain(needed);
    }
    // The `multifrost` command: its bin is shipped and starts with a shebang (npm makes it executable on install).
    const { bin } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(Object.keys(bin)).toEqual(["multifrost"]);
    expect(paths).toContain(bin.multifrost!.replace(/^\.\//, ""));
    expect(readFileSync(join(root, bin.multifrost!), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    const forbidden = paths.filter((path) => FORBIDDEN.some((pattern) => pattern.test(path)));
    expect(forbidden).toEqual([]);
  });

  it("ships docs that stand on their own: no files outside the repository, no issue numbers or roadmap steps", () => {
    const docs = ["README.md", ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)];
    const outside = /DESIGN\.md|UPSTREAM-V4|protocol-v4\.txt|shared docs|\bissues? #?\d|\broadmap\b|§/i;
    const found = docs.flatMap((doc) =>
      readFileSync(join(root, doc), "utf8")
        .split("\n")
        .flatMap((line, i) => (outside.test(line) ? [`${doc}:${i + 1}: ${line.trim().slice(0, 120)}`] : [])),
    );
    expect(found).toEqual([]);
  });

  it("LICENSE matches package.json's license", () => {
    const license = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { license: string }).license;
    expect(license).toBe("MIT");
    expect(readFileSync(join(root, "LICENSE"), "utf8")).toMatch(/^MIT License\n/);
  });

  describe("packed from a fresh clone, installed into a fresh project", () => {
    let work: string;
    let packed: PackResult;
    let app: string;

    beforeAll(() => {
      work = mkdtempSync(join(tmpdir(), "multifrost-pack-"));
      const clone = join(work, "clone");
      // A fresh clone of this working tree: tracked and not-ignored files only (no dist/, no venvs).
      const listed = run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root).stdout.split("\0").filter(Boolean);
      for (const file of listed) {
        if (!existsSync(join(root, file))) continue; // deleted in the working tree
        mkdirSync(dirname(join(clone, file)), { recursive: true });
        copyFileSync(join(root, file), join(clone, file));
      }
      symlinkSync(join(root, "node_modules"), join(clone, "node_modules"), "dir"); // what `npm ci` would install
      packed = pack(clone, ["--pack-destination", work]); // runs prepack: a clean build
      app = installTarball(join(work, packed.filename), work);
    }, 120_000);

    afterAll(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it("holds a complete build: every source file compiled, with types; source maps point at shipped sources", () => {
      const paths = new Set(packed.files.map((file) => file.path));
      const sources = [...paths].filter((path) => path.startsWith("src/") && path.endsWith(".ts"));
      expect(sources.length).toBeGreaterThan(20);
      for (const source of sources) {
        const base = source.replace(/^src\//, "dist/").replace(/\.ts$/, "");
        expect(paths, `${source} compiled`).toContain(`${base}.js`);
        expect(paths, `${source} typed`).toContain(`${base}.d.ts`);
      }
      // Nothing in dist/ without a source (stale output from a renamed file).
      for (const path of paths) {
        if (!path.startsWith("dist/")) continue;
        const source = path.replace(/^dist\//, "src/").replace(/(\.d)?\.ts\.map$|\.js\.map$|\.d\.ts$|\.js$/, ".ts");
        expect(paths, `${path} has a source`).toContain(source);
      }
      const maps = [...paths].filter((path) => path.endsWith(".map"));
      expect(maps.length).toBeGreaterThan(0);
      const pkg = join(app, "node_modules", "multifrost");
      for (const map of maps) {
        const { sources: mapped, sourcesContent } = JSON.parse(readFileSync(join(pkg, map), "utf8")) as { sources: string[]; sourcesContent?: (string | null)[] };
        mapped.forEach((target, i) => {
          // A bundled dependency's source is not shipped: the map carries its text (dist/child-entry.js.map).
          if (typeof sourcesContent?.[i] === "string") return;
          const resolved = posix.normalize(posix.join(posix.dirname(map), target));
          expect(paths, `${map} → ${target}`).toContain(resolved);
        });
      }
      const forbidden = [...paths].filter((path) => FORBIDDEN.some((pattern) => pattern.test(path)));
      expect(forbidden).toEqual([]);
      // multifrost/child is the bundle of scripts/build-child.mjs, not tsc's re-exporting module.
      const lean = readFileSync(join(pkg, "dist/child-entry.js"), "utf8");
      expect(lean).toMatch(/\bChildWorker = class\b|\bclass ChildWorker\b/);
      expect(lean).not.toMatch(/from "\.\/child-worker\.js"/);
    });

    it("loads with import and with require, every entry point, the same exports", () => {
      const esm = run(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import * as mf from "multifrost"; import * as machines from "multifrost/machines"; import * as child from "multifrost/child"; console.log(JSON.stringify([Object.keys(mf).sort(), Object.keys(machines).sort(), Object.keys(child).sort(), child.ChildWorker === mf.ChildWorker]));`,
        ],
        app,
      );
      const keys = (name: string): string => `Object.keys(require("${name}")).filter((k) => k !== "__esModule").sort()`;
      const cjs = run(
        process.execPath,
        ["-e", `console.log(JSON.stringify([${keys("multifrost")}, ${keys("multifrost/machines")}, ${keys("multifrost/child")}, require("multifrost/child").ChildWorker === require("multifrost").ChildWorker]));`],
        app,
      );
      const [esmMain, esmMachines, esmChild, sameClass] = JSON.parse(esm.stdout) as [string[], string[], string[], boolean];
      expect(esmMain).toContain("ParentWorker");
      expect(esmMain).toContain("ChildWorker");
      expect(esmMachines.length).toBeGreaterThan(0);
      expect(esmChild).toEqual(expect.arrayContaining(["ChildWorker", "currentCall"]));
      expect(sameClass).toBe(true);
      expect(JSON.parse(cjs.stdout)).toEqual([esmMain, esmMachines, esmChild, true]);
      expect(cjs.stderr).not.toMatch(/error/i);
    });

    it("type-checks and runs `import mf = require(\"multifrost\")` and multifrost/child in a .cts file", () => {
      writeFileSync(
        join(app, "main.cts"),
        `import mf = require("multifrost");\nimport lean = require("multifrost/child");\nconst spawn: typeof mf.ParentWorker.spawn = mf.ParentWorker.spawn;\nconst Worker: typeof mf.ChildWorker = lean.ChildWorker;\nconsole.log(typeof spawn, mf.EncodeError.name, Worker === mf.ChildWorker);\n`,
      );
      const tsc = join(root, "node_modules/typescript/bin/tsc");
      run(process.execPath, [tsc, "--module", "nodenext", "--strict", "--skipLibCheck", "--types", "node", "--typeRoots", join(root, "node_modules/@types"), "--outDir", "out", "main.cts"], app);
      expect(run(process.execPath, ["out/main.cjs"], app).stdout.trim()).toBe("function EncodeError true");
    });

    it("runs workers: a CommonJS parent calls ES module children importing multifrost and multifrost/child, all from the installed package", () => {
      for (const [file, entry] of [["worker.mjs", "multifrost"], ["lean-worker.mjs", "multifrost/child"]]) {
        writeFileSync(
          join(app, file!),
          `import { ChildWorker } from "${entry}";\nclass W extends ChildWorker { add(a, b) { return a + b + (this.call.function === "add" ? 0 : 100); } }\nawait new W().run();\n`,
        );
      }
      writeFileSync(
        join(app, "parent.cjs"),
        `const { ParentWorker } = require("multifrost");
(async () => {
  for (const file of ["worker.mjs", "lean-worker.mjs"]) {
    const worker = ParentWorker.spawn(require("node:path").join(__dirname, file), "node", { onOutput: () => {} });
    const handle = worker.handle();
    await handle.start();
    console.log(await handle.call.add(2, 3));
    await handle.stop();
  }
})().catch((error) => { console.error(error); process.exit(1); });
`,
      );
      const result = run(process.execPath, ["parent.cjs"], app);
      expect(result.stdout.trim()).toBe("5\n5");
    });

    it("runs the multifrost command from the installed package", () => {
      const main = join(app, "node_modules", "multifrost", "dist", "cli", "main.js");
      expect(run(process.execPath, [main, "--version"], app).stdout.trim()).toBe(packed.filename.replace(/^multifrost-|\.tgz$/g, ""));
      expect(run(process.execPath, [main, "call", "--help"], app).stdout).toContain("Usage: multifrost call");
    });
  });
});

/**
 * Installs the tarball as `npm install <tarball>` would lay it out, without the network: the
 * package is unpacked into node_modules/multifrost, and each of its declared dependencies (only
 * those: a missing declaration fails the load) is linked from this repository's node_modules.
 * `npm install --offline` is not used: it needs every dependency's tarball in the npm cache.
 */
function installTarball(tarball: string, work: string): string {
  const app = join(work, "app");
  const target = join(app, "node_modules", "multifrost");
  mkdirSync(target, { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "fresh-app", private: true }));
  run("tar", ["-xzf", tarball, "-C", target, "--strip-components=1"], work);
  const manifest = JSON.parse(readFileSync(join(target, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  for (const dependency of Object.keys(manifest.dependencies ?? {})) {
    const link = join(app, "node_modules", dependency);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(root, "node_modules", dependency), link, "dir");
  }
  return app;
}
