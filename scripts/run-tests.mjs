// The README's test command (`npm test`): the vitest suite (unit, TS↔TS, cross-language with real
// processes), then the Python library's pytest suite under each venv scripts/setup-python.sh made
// (python/.venv: Debian's pyzmq/msgpack; python/.venv-pypi: PyPI's), else from python/src with
// Debian's python3. All always run; the last line counts them all: "N passed, N failed".
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

// The library's suite under each interpreter set-up made: Debian's python3-zmq/msgpack (the venv
// that sees them, else /usr/bin/python3 with python/src), and the PyPI venv when it exists.
const debianVenv = join(root, "python/.venv/bin/python");
const pythons = [existsSync(debianVenv) ? debianVenv : (process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3")];
const pypiVenv = join(root, "python/.venv-pypi/bin/python");
if (existsSync(pypiVenv)) pythons.push(pypiVenv);
const pytestRuns = pythons.map((python, i) => {
  const junit = join(results, `pytest-${i}.xml`);
  console.log(`\n== pytest (python/tests, ${python})`);
  const run = spawnSync(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", `--junitxml=${junit}`, "python/tests"], {
    cwd: root,
    stdio: "inherit",
  });
  return { status: run.status, junit };
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
for (const { status, junit } of pytestRuns) {
  if (existsSync(junit) && status !== 5) {
    const suite = /<testsuite [^>]*>/.exec(readFileSync(junit, "utf8"))?.[0] ?? "";
    const count = (name) => Number(new RegExp(`${name}="(\\d+)"`).exec(suite)?.[1] ?? 0);
    const pyFailed = count("failures") + count("errors");
    const pySkipped = count("skipped");
    passed += count("tests") - pyFailed - pySkipped;
    failed += pyFailed;
    skipped += pySkipped;
  }
  if (status !== 0 && status !== 1) failed++; // pytest could not run its tests at all (5: none collected)
}
const line = `${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : "");
writeFileSync(join(results, "summary.txt"), `${line}\n`);
console.log(`\n${line}`);
process.exit(vitest.status === 0 && pytestRuns.every((run) => run.status === 0) ? 0 : 1);
