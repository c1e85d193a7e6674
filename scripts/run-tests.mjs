// The README's test command (`npm test`): the vitest suite (unit, TS↔TS, cross-language with real
// processes), then the Python library's pytest suite, with the installed copy of python/ when
// scripts/setup-python.sh made a venv (python/.venv), else from python/src with Debian's python3.
// Both always run; the last line counts both: "N passed, N failed".
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const results = join(root, "test-results");
mkdirSync(results, { recursive: true });

const vitest = spawnSync(process.execPath, [join(root, "node_modules/vitest/vitest.mjs"), "run", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
});

const venvPython = join(root, "python/.venv/bin/python");
const python = existsSync(venvPython) ? venvPython : (process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3");
const junit = join(results, "pytest.xml");
console.log(`\n== pytest (python/tests, ${python})`);
const pytest = spawnSync(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", `--junitxml=${junit}`, "python/tests"], {
  cwd: root,
  stdio: "inherit",
});

let passed = 0;
let failed = 0;
let skipped = 0;
const vitestReport = join(results, "vitest.json");
if (existsSync(vitestReport)) {
  const report = JSON.parse(readFileSync(vitestReport, "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
if (vitest.status !== 0 && failed === 0) failed++; // it failed before reporting (e.g. a file that cannot load)
if (existsSync(junit) && pytest.status !== 5) {
  const suite = /<testsuite [^>]*>/.exec(readFileSync(junit, "utf8"))?.[0] ?? "";
  const count = (name) => Number(new RegExp(`${name}="(\\d+)"`).exec(suite)?.[1] ?? 0);
  const pyFailed = count("failures") + count("errors");
  const pySkipped = count("skipped");
  passed += count("tests") - pyFailed - pySkipped;
  failed += pyFailed;
  skipped += pySkipped;
}
if (pytest.status !== 0 && pytest.status !== 1) failed++; // pytest could not run its tests at all (5: none collected)
const line = `${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : "");
writeFileSync(join(results, "summary.txt"), `${line}\n`);
console.log(`\n${line}`);
process.exit(vitest.status === 0 && pytest.status === 0 ? 0 : 1);
