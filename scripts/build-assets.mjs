#!/usr/bin/env node
// Part of `npm run build` (after tsc): writes assets/, the dashboard's files that are not compiled
// from src/ (the package ships assets/ next to dist/):
//   assets/mermaid.min.js, assets/mermaid.LICENSE  mermaid's self-contained browser bundle, copied
//                                                  from node_modules (a devDependency: users get
//                                                  the bundle, not mermaid's dependency tree)
//   assets/machines.json                           every machine of dist/machines as Mermaid text
//                                                  (scripts/machine-diagrams.mjs) with the Mermaid
//                                                  id of each state, by state path
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { findMachines, renderMachine, stateIds } from "./machine-diagrams.mjs";

const out = fileURLToPath(new URL("../assets/", import.meta.url));
mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const mermaidDir = fileURLToPath(new URL(".", `file://${require.resolve("mermaid/package.json")}`));
copyFileSync(`${mermaidDir}dist/mermaid.min.js`, `${out}mermaid.min.js`);
copyFileSync(`${mermaidDir}LICENSE`, `${out}mermaid.LICENSE`);

const machines = await import(new URL("../dist/machines/index.js", import.meta.url).href);
const diagrams = {};
for (const [name, machine] of findMachines(machines)) {
  diagrams[machine.id] = { exportName: name, mermaid: renderMachine(machine), ids: stateIds(machine) };
}
writeFileSync(`${out}machines.json`, `${JSON.stringify(diagrams, null, 1)}\n`);
