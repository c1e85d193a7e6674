import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Safety net: every test process, and every worker it spawns, registers services in a
// temporary registry, never in ~/.multifrost (tests that need their own pass a dir explicitly).
const registryDir = mkdtempSync(join(tmpdir(), "multifrost-test-registry-"));
process.env.MULTIFROST_REGISTRY_DIR = registryDir; // read by global-setup's teardown

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests spawn real processes on a 2-core machine: bound parallelism and time loosely.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ["test/global-setup.ts"],
    env: { MULTIFROST_REGISTRY_DIR: registryDir },
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
  },
});
