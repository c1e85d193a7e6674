import { existsSync } from "node:fs";

/** Fixture workers import "multifrost" (the built package): fail early and clearly without a build. */
export default function setup(): void {
  if (!existsSync(new URL("../dist/index.js", import.meta.url))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does it for you)");
  }
}
