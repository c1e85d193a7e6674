// Type-checks every TypeScript and JavaScript code block of README.md and docs/*.md against the
// built package (`npm run build` first): TypeScript blocks under strict, noUncheckedIndexedAccess
// and exactOptionalPropertyTypes; JavaScript blocks with checkJs under strict (an untyped
// `handle.call.add` is an index access, possibly undefined under noUncheckedIndexedAccess, and a
// JavaScript reader cannot type it: TypeScript snippets use typed handles instead).
//
// Each block is its own ES module (top-level await allowed) that imports "multifrost" as a user
// would (the package's self-reference, resolved through package.json "exports" to dist/).
// An HTML comment right before a block, invisible on the rendered page, can add to it:
//   <!-- snippet: declare const url: string; -->   declarations the prose stands for
//   <!-- snippet: skip -->                          not checked (say why next to it)
//   <!-- snippet: file w.mjs -->                    also saved as w.mjs for the runnable blocks
//   <!-- snippet: run parent.mjs -->                also saved as parent.mjs and run with node
// Runnable blocks run in test-results/doc-run/ (inside the package, so "multifrost" resolves), with
// every `file` block beside them, and must exit 0 within 30 s.
// Exit status 0 when every block compiles and every runnable one runs; the errors name the
// document and line otherwise.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "test-results", "doc-snippets"); // inside the package, so "multifrost" resolves to it
const LANGUAGES = { ts: "mts", typescript: "mts", js: "mjs", javascript: "mjs" };

export function extractSnippets(markdown, doc) {
  const lines = markdown.split("\n");
  const snippets = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    if (end < 0) throw new Error(`${doc}:${i + 1}: a code block that never closes`);
    const extension = LANGUAGES[open[1].toLowerCase()];
    const marker = /^<!--\s*snippet:\s*(.*?)\s*-->\s*$/.exec(lines[i - 1] ?? "");
    const saved = /^(file|run)\s+([\w.-]+)$/.exec(marker?.[1] ?? "");
    if (saved && !extension) {
      // A block in another language (a Python worker) saved for the runnable ones, not checked.
      snippets.push({ doc, line: i + 1, extension: undefined, context: "", body: lines.slice(i + 1, end), save: saved[2], run: false });
    } else if (extension && marker?.[1] !== "skip") {
      snippets.push({
        doc,
        line: i + 1,
        extension,
        context: saved ? "" : (marker?.[1] ?? ""),
        body: lines.slice(i + 1, end),
        save: saved?.[2],
        run: saved?.[1] === "run",
      });
    }
    i = end;
  }
  return snippets;
}

export function checkDocSnippets() {
  const docs = ["README.md", ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).sort().map((name) => `docs/${name}`)];
  const snippets = docs.flatMap((doc) => extractSnippets(readFileSync(join(root, doc), "utf8"), doc));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const files = new Map(); // file name → snippet
  for (const snippet of snippets) {
    if (snippet.extension === undefined) continue;
    const name = `${snippet.doc.replace(/[/.]/g, "_")}_L${snippet.line}.${snippet.extension}`;
    // The context goes on the block's first line, so a line number in an error maps straight back.
    const [first = "", ...rest] = snippet.body;
    writeFileSync(join(out, name), [`${snippet.context} ${first}`, ...rest, "export {};", ""].join("\n"));
    files.set(name, snippet);
  }
  const common = {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2023"],
    types: ["node"],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    typeRoots: [join(root, "node_modules/@types")],
  };
  const configs = {
    "tsconfig.ts.json": { ...common, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true },
    // JavaScript readers do not annotate parameters: no implicit-any errors there.
    "tsconfig.js.json": { ...common, allowJs: true, checkJs: true, noImplicitAny: false },
  };
  const results = [];
  for (const [config, compilerOptions] of Object.entries(configs)) {
    const include = [...files.keys()].filter((name) => name.endsWith(config.includes(".ts.") ? ".mts" : ".mjs"));
    if (include.length === 0) continue;
    writeFileSync(join(out, config), JSON.stringify({ compilerOptions, files: include }, null, 2));
    const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(out, config), "--pretty", "false"], { cwd: out, encoding: "utf8" });
    // Map "file(line,col): error" back to "doc:line".
    const text = `${tsc.stdout}${tsc.stderr}`.replace(/^([\w.-]+\.m[tj]s)\((\d+),(\d+)\)/gm, (whole, name, line, col) => {
      const snippet = files.get(name);
      return snippet ? `${snippet.doc}:${snippet.line + Number(line)}:${col}` : whole;
    });
    results.push({ config, status: tsc.status, output: text.trim(), count: include.length });
  }
  const runs = runSnippets(snippets);
  return { snippets, results, runs, ok: results.every((result) => result.status === 0) && runs.every((run) => run.status === 0) };
}

/** Saves the `file`/`run` blocks side by side and runs each `run` block with node. */
function runSnippets(snippets) {
  const dir = join(root, "test-results", "doc-run");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const snippet of snippets) {
    if (snippet.save) writeFileSync(join(dir, snippet.save), [...snippet.body, ""].join("\n"));
  }
  const python = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
  const env = { ...process.env, MULTIFROST_PYTHON: python, PYTHONPATH: join(root, "python", "src") };
  return snippets
    .filter((snippet) => snippet.run)
    .map((snippet) => {
      const node = spawnSync(process.execPath, [snippet.save], { cwd: dir, env, encoding: "utf8", timeout: 30_000 });
      const status = node.status ?? 1;
      const output = `${node.stdout}${node.stderr}`.trim();
      return { doc: snippet.doc, line: snippet.line, name: snippet.save, status, output };
    });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { snippets, results, runs, ok } = checkDocSnippets();
  for (const { config, output, count } of results) {
    console.log(`${relative(root, join(out, config))}: ${count} block(s)${output ? `\n${output}` : ", no errors"}`);
  }
  for (const run of runs) {
    console.log(`${run.doc}:${run.line} (${run.name}): ${run.status === 0 ? "ran, exit 0" : `exit ${run.status}\n${run.output}`}`);
  }
  const checked = snippets.filter((snippet) => snippet.extension !== undefined).length;
  console.log(`${checked} code blocks checked, ${runs.length} run: ${ok ? "all compile and run" : "errors above"}`);
  process.exit(ok ? 0 : 1);
}
