// Every TypeScript/JavaScript code block of README.md and docs/*.md compiles against the built
// package (TypeScript: strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes; JavaScript:
// checkJs). scripts/check-doc-snippets.mjs does the work; `npm run typecheck` runs it too.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("every code block in the docs type-checks, and the runnable ones (README's parent/worker pairs) run", () => {
  const script = fileURLToPath(new URL("../scripts/check-doc-snippets.mjs", import.meta.url));
  const result = spawnSync(process.execPath, [script], { encoding: "utf8" });
  const output = `${result.stdout}${result.stderr}`;
  expect(output).toMatch(/(\d+) code blocks checked, (\d+) run: all compile and run/);
  expect(Number(/(\d+) code blocks checked/.exec(output)?.[1])).toBeGreaterThanOrEqual(8);
  expect(Number(/, (\d+) run:/.exec(output)?.[1])).toBeGreaterThanOrEqual(2);
  expect(output).toMatch(/README\.md:\d+ \(parent\.mjs\): ran, exit 0/);
  expect(result.status, output).toBe(0);
}, 60_000);
