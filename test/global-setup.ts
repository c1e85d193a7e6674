import { existsSync, rmSync } from "node:fs";

/**
 * Fixture workers import "multifrost" (the built package): fail early and clearly without a
 * build. Afterwards, remove the temporary registry vitest.config.ts created for the run.
 */
export default function setup(): () => void {
  if (!existsSync(new URL("../dist/index.js", import.meta.url))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does it for you)");
  }
  return () => {
    const dir = process.env.MULTIFROST_REGISTRY_DIR;
    if (dir?.includes("multifrost-test-registry-")) rmSync(dir, { recursive: true, force: true });
  };
}
