#!/usr/bin/env node
// Part of `npm run build` (after tsc): replaces dist/child-entry.js, tsc's output for the lean
// worker entry `multifrost/child`, with one bundled ES module (esbuild), and its source map.
// dist/child-entry.d.ts stays tsc's.
//
// Why: a spawned worker's startup is dominated by loading modules, and Node's ES module loader pays
// per module (resolve, an async file read, link), not per byte. tsc's entry loads ~30 of our files
// plus p-queue's three; the bundle is one file (docs/performance.md, "A lean child": import 47 ms →
// ≈ 33 ms, the floor of importing zeromq + msgpackr being ≈ 28 ms).
//
// What stays outside the bundle, and why:
// - zeromq: a native addon, and the process's one zmq context (the ZAP handler binds in it).
// - msgpackr: it finds its native string extractor (msgpackr-extract) with a require() relative to
//   its own file, and keeps extensions (`addExtension`) as module state; bundled, it would look for
//   the extractor from dist/ (not found with nested or pnpm layouts: silently slower decoding) and
//   ignore the application's extensions. Measured, bundling it saved ≈ 3 ms — not worth that.
// - dist/errors.js: the public error classes, so `err instanceof InvalidArgumentError` holds
//   whichever entry the error and the class came from.
// - what the child imports on demand (`import()`: the registry in connect mode, the SERVER span
//   with a tracer provider): kept as tsc's modules, loaded only when needed, as before.
// p-queue (a plain ES module, no state shared with anything) is bundled: ≈ 3 ms less.
//
// State that must be one per process whichever copy runs (the call context behind `this.call`,
// the ZAP handler) lives in `globalThis[Symbol.for("multifrost.…")]`, and `multifrost` re-exports
// ChildWorker and currentCall from this bundle, so there is one ChildWorker class.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = join(root, "src");
const outfile = join(root, "dist", "child-entry.js");
const { dependencies } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
/** Dependencies bundled into the entry; every other one is imported from node_modules. */
const BUNDLED = new Set(["p-queue"]);

/** Our modules that stay separate: imported from their tsc output next to the bundle. */
const separateModules = {
  name: "separate-modules",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      if (!target.startsWith(src + "/")) return undefined;
      if (target === join(src, "errors.js") || args.kind === "dynamic-import") {
        return { path: `./${relative(src, target)}`, external: true };
      }
      return undefined;
    });
  },
};

const result = await build({
  entryPoints: [join(src, "child-entry.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  tsconfig: join(root, "tsconfig.json"),
  external: Object.keys(dependencies).filter((name) => !BUNDLED.has(name)),
  plugins: [separateModules],
  // Classes and functions keep their names (`ChildWorker.name`, stack traces), as tsc's output has.
  keepNames: true,
  sourcemap: "linked",
  sourcesContent: true,
  legalComments: "inline",
  banner: { js: "// multifrost/child, bundled by scripts/build-child.mjs from src/child-entry.ts (see its header)." },
  write: false,
  logLevel: "warning",
});

for (const file of result.outputFiles) {
  if (!file.path.endsWith(".map")) {
    writeFileSync(file.path, file.contents);
    continue;
  }
  // Our sources ship in src/ (the map points there, as tsc's maps do); the bundled dependencies'
  // do not, so the map carries their text.
  const map = JSON.parse(file.text);
  const dir = dirname(file.path);
  map.sourcesContent = map.sources.map((source, i) =>
    resolve(dir, source).startsWith(src + "/") ? null : map.sourcesContent[i],
  );
  writeFileSync(file.path, JSON.stringify(map));
}
