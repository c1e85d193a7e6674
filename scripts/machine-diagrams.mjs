#!/usr/bin/env node
// Renders every XState machine exported by src/machines (through its build, dist/machines) as a
// Mermaid stateDiagram-v2, and writes them to docs/machines.md.
//
//   node scripts/machine-diagrams.mjs          write docs/machines.md
//   node scripts/machine-diagrams.mjs --check  exit 1 if docs/machines.md is out of date
//
// `npm run docs:machines` builds first. The rendering functions are pure and exported for the
// tests (test/machine-diagrams.test.ts); types are in machine-diagrams.d.mts.
//
// What the walk reads (XState v5 StateNode): .states, .type, .initial.target, .transitions (a Map
// from event type to TransitionDefinition[], which also holds the `after`, onDone and invoke
// onDone/onError/onSnapshot transitions under their internal event types), .after (to recognise
// the delayed ones), .always, .invoke.
//
// Mermaid constraints the output respects (checked against mermaid's state grammar):
// - a state id is [A-Za-z0-9_]+, not a keyword, and never <parent>_start / <parent>_end / startN /
//   endN (the ids mermaid gives the [*] pseudo-states); labels go in `state "label" as id`.
// - a state belongs to the composite it is first mentioned in, so every state is declared inside
//   its parent before any transition, and a transition is written inside a composite only when both
//   ends are children of that composite (and of the same region); every other transition is
//   written at the top level, which never changes a state's parent.
// - a label cannot hold ':' or ';' (they end it) nor '"'; such characters are replaced by
//   look-alikes.

import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const DOC_FILE = fileURLToPath(new URL("../docs/machines.md", import.meta.url));
const MACHINES_MODULE = new URL("../dist/machines/index.js", import.meta.url);

/** Duck-typed check for an XState v5 StateMachine. */
export function isStateMachine(value) {
  return (
    typeof value === "object" &&
    value !== null &&
    value.root?.states !== undefined &&
    typeof value.transition === "function" &&
    typeof value.id === "string" &&
    value.config !== undefined
  );
}

/** The machines among a module's exports, as [export name, machine] sorted by export name. */
export function findMachines(moduleExports) {
  const seen = new Set();
  const found = [];
  for (const name of Object.keys(moduleExports).sort()) {
    const value = moduleExports[name];
    if (!isStateMachine(value) || seen.has(value)) continue;
    seen.add(value);
    found.push([name, value]);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Text helpers

/** Words mermaid's state grammar reads as keywords when they stand alone as an id. */
const KEYWORD_IDS = new Set([
  "state", "note", "class", "classdef", "style", "scale", "click", "href", "hide", "direction",
  "end", "root", "default", "acctitle", "accdescr",
]);

/** Text for an edge label or a note: one line, without the characters that would end it. */
function labelText(text) {
  return String(text)
    .replace(/\s+/g, " ")
    .replace(/:/g, "\u2236") // RATIO, looks like ':'
    .replace(/;/g, "\uFF1B") // FULLWIDTH SEMICOLON
    .replace(/%%/g, "%")
    .trim();
}

/** Text for `state "…" as id`. */
function stateLabel(text) {
  return String(text).replace(/\s+/g, " ").replace(/"/g, "'");
}

function delayText(delay) {
  if (typeof delay === "number" || /^\d+$/.test(String(delay))) return `${delay}ms`;
  if (typeof delay === "function") return delay.name || "expression";
  return String(delay);
}

/** A guard's name: "canRetry", "and(a, not(b))", "stateIn(#m.x)"; inline functions by name. */
function guardText(guard) {
  if (typeof guard === "string") return guard;
  if (typeof guard === "function") {
    if (Array.isArray(guard.guards)) return `${guard.name}(${guard.guards.map(guardText).join(", ")})`;
    if ("stateValue" in guard) {
      const value = guard.stateValue;
      return `${guard.name || "stateIn"}(${typeof value === "string" ? value : JSON.stringify(value)})`;
    }
    return guard.name || "inline guard";
  }
  if (typeof guard === "object" && guard !== null && typeof guard.type === "string") return guard.type;
  return "guard";
}

function childrenOf(node) {
  return Object.values(node.states ?? {});
}

/** What an invocation runs: the setup() actor name, a child machine's id, or the invoke id. */
function invokeText(node, invoke, index) {
  if (typeof invoke.src === "string" && !invoke.src.startsWith("xstate.invoke.")) return invoke.src;
  const configured = [node.config.invoke].flat()[index];
  const logic = typeof configured === "object" && configured !== null ? configured.src : undefined;
  if (typeof logic === "object" && logic !== null && typeof logic.id === "string") return logic.id;
  if (invoke.id !== `${index}.${node.id}`) return invoke.id;
  return "inline actor";
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Mermaid ids for every state node, in document order: the path joined with "_". */
function assignIds(machine, wrapRoot) {
  const ids = new Map();
  const used = new Set();
  const usable = (id) =>
    !used.has(id) && !KEYWORD_IDS.has(id.toLowerCase()) && !/(_start|_end|^start\d+|^end\d+)$/.test(id);
  const visit = (node) => {
    if (node !== machine.root || wrapRoot) {
      const path = node === machine.root ? [machine.id] : node.path;
      let base = path.join("_").replace(/[^A-Za-z0-9_]/g, "_") || "state";
      if (/^default/i.test(base)) base = `s_${base}`; // older mermaid lexes a leading "default" as a keyword
      let id = base;
      for (let n = 2; !usable(id); n++) id = `${base}_${n}`;
      used.add(id);
      ids.set(node, id);
    }
    childrenOf(node).forEach(visit);
  };
  visit(machine.root);
  return ids;
}

/** The transitions leaving `node` that have a target, as { source, target, label }. */
function edgesOf(node) {
  const delays = new Map(node.after.map((t) => [t.eventType, t.delay]));
  const invokeEvents = new Map();
  node.invoke.forEach((invoke, index) => {
    const name = invokeText(node, invoke, index);
    invokeEvents.set(`xstate.done.actor.${invoke.id}`, `onDone (${name})`);
    invokeEvents.set(`xstate.error.actor.${invoke.id}`, `onError (${name})`);
    invokeEvents.set(`xstate.snapshot.${invoke.id}`, `onSnapshot (${name})`);
  });
  const edges = [];
  const add = (transition, event) => {
    const label = transition.guard === undefined ? event : `${event} [${guardText(transition.guard)}]`;
    for (const target of transition.target ?? []) edges.push({ source: node, target, label });
  };
  for (const [eventType, transitions] of node.transitions) {
    let event = eventType;
    if (delays.has(eventType)) event = `after ${delayText(delays.get(eventType))}`;
    else if (invokeEvents.has(eventType)) event = invokeEvents.get(eventType);
    else if (eventType === `xstate.done.state.${node.id}`) event = "onDone";
    for (const transition of transitions) add(transition, event);
  }
  for (const transition of node.always ?? []) add(transition, "always");
  return edges;
}

/**
 * Renders one machine as the text of a Mermaid stateDiagram-v2 (without the ``` fence).
 * The machine's root is drawn as a composite of its own only when it needs to be: when it has
 * transitions or invocations of its own, or is parallel or atomic.
 */
export function renderMachine(machine) {
  if (!isStateMachine(machine)) throw new TypeError("renderMachine: not an XState state machine");
  const root = machine.root;
  const rootEdges = edgesOf(root);
  const wrapRoot = root.type !== "compound" || rootEdges.length > 0 || root.invoke.length > 0;
  const ids = assignIds(machine, wrapRoot);
  const id = (node) => ids.get(node);

  // Which block each transition is written in: its source's parent when both ends share it (and,
  // under a parallel state, the same region); otherwise the top level (key TOP).
  const TOP = Symbol("top");
  const blockKey = (node) => (node === root && !wrapRoot ? TOP : node);
  const blocks = new Map(); // block key -> edges written at the end of that composite's body
  const regionEdges = new Map(); // region -> its self-transitions, written in its own region
  const push = (map, key, edge) => {
    if (!map.has(key)) map.set(key, []);
    map.get(key).push(edge);
  };
  const place = (edge) => {
    const { source, target } = edge;
    const parent = source.parent;
    if (parent !== undefined && parent === target.parent && parent.type !== "parallel") {
      push(blocks, blockKey(parent), edge);
    } else if (parent?.type === "parallel" && source === target) {
      push(regionEdges, source, edge);
    } else {
      push(blocks, TOP, edge);
    }
  };
  const visit = (node) => {
    (node === root ? rootEdges : edgesOf(node)).forEach(place);
    childrenOf(node).forEach(visit);
  };
  visit(root);

  const edgeLine = (edge) => `${id(edge.source)} --> ${id(edge.target)} : ${labelText(edge.label)}`;
  const lines = ["stateDiagram-v2"];
  const emit = (depth, text) => lines.push(`${"  ".repeat(depth)}${text}`);

  const stateLabelOf = (node) => {
    if (node === root) return machine.id;
    if (node.type === "history") return `${node.key} (${node.history === "deep" ? "H*" : "H"})`;
    return node.key;
  };

  const renderState = (node, depth) => {
    const head = `state "${stateLabel(stateLabelOf(node))}" as ${id(node)}`;
    if (childrenOf(node).length > 0) {
      emit(depth, `${head} {`);
      renderBody(node, depth + 1);
      emit(depth, "}");
    } else {
      emit(depth, head);
    }
    if (node.invoke.length > 0) {
      const what = node.invoke.map((invoke, index) => invokeText(node, invoke, index)).join(", ");
      emit(depth, `note right of ${id(node)} : ${labelText(`invokes ${what}`)}`);
    }
  };

  const renderBody = (node, depth) => {
    const children = childrenOf(node);
    if (node.type === "parallel") {
      children.forEach((child, index) => {
        if (index > 0) emit(depth, "--");
        renderState(child, depth);
        if (child.type === "final") emit(depth, `${id(child)} --> [*]`);
        for (const edge of regionEdges.get(child) ?? []) emit(depth, edgeLine(edge));
      });
      return;
    }
    for (const target of node.initial?.target ?? []) emit(depth, `[*] --> ${id(target)}`);
    for (const child of children) renderState(child, depth);
    for (const child of children) if (child.type === "final") emit(depth, `${id(child)} --> [*]`);
    if (blockKey(node) !== TOP) for (const edge of blocks.get(node) ?? []) emit(depth, edgeLine(edge));
  };

  if (wrapRoot) {
    emit(1, `[*] --> ${id(root)}`);
    renderState(root, 1);
  } else {
    renderBody(root, 1);
  }
  for (const edge of blocks.get(TOP) ?? []) emit(1, edgeLine(edge));
  return lines.join("\n");
}

/**
 * The Mermaid id renderMachine gives each state, by the state's path ("live.health.connected"; the
 * root, when drawn, under ""). The dashboard uses it to find a state's node in the rendered SVG.
 */
export function stateIds(machine) {
  if (!isStateMachine(machine)) throw new TypeError("stateIds: not an XState state machine");
  const root = machine.root;
  const wrapRoot = root.type !== "compound" || edgesOf(root).length > 0 || root.invoke.length > 0;
  const ids = {};
  for (const [node, id] of assignIds(machine, wrapRoot)) ids[node.path.join(".")] = id;
  return ids;
}

/** The whole of docs/machines.md for the machines among `moduleExports` (e.g. dist/machines). */
export function renderDocument(moduleExports) {
  const machines = findMachines(moduleExports);
  const out = [
    "# State machines",
    "",
    "<!-- Generated file: do not edit by hand. -->",
    "",
    "Generated by `npm run docs:machines` from the machine definitions in `src/machines`; do not",
    "edit by hand (`node scripts/machine-diagrams.mjs --check` fails when it is out of date).",
    "",
    "Each transition is labelled with its event. `after X` is a delayed transition (X is a delay",
    "in milliseconds or a delay named in `setup({ delays })`), `always` an eventless one, and",
    "`[name]` follows a guarded transition's event. Transitions without a target (actions only)",
    "are not drawn. A note lists the actors a state invokes; `onDone (x)` / `onError (x)` are the",
    "transitions taken when invoked actor x finishes or fails.",
  ];
  if (machines.length === 0) out.push("", "_No machines are exported from `src/machines`._");
  for (const [name, machine] of machines) {
    out.push(
      "",
      `## ${machine.id}`,
      "",
      `Exported as \`${name}\` from \`multifrost/machines\`.`,
      "",
      "```mermaid",
      renderMachine(machine),
      "```",
    );
  }
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// Command line

function firstDifference(expected, actual) {
  const a = expected.split("\n");
  const b = actual.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return { line: i + 1, expected: a[i], actual: b[i] };
  }
  return undefined;
}

async function main(args) {
  const check = args.includes("--check");
  let moduleExports;
  try {
    moduleExports = await import(MACHINES_MODULE.href);
  } catch (error) {
    console.error(`Cannot load ${fileURLToPath(MACHINES_MODULE)}: run \`npm run build\` first.`);
    throw error;
  }
  const expected = renderDocument(moduleExports);
  if (!check) {
    writeFileSync(DOC_FILE, expected);
    console.log(`Wrote docs/machines.md (${findMachines(moduleExports).length} machine(s)).`);
    return 0;
  }
  let actual;
  try {
    actual = readFileSync(DOC_FILE, "utf8");
  } catch {
    console.error("docs/machines.md is missing: run `npm run docs:machines`.");
    return 1;
  }
  const diff = firstDifference(expected, actual);
  if (diff === undefined) {
    console.log("docs/machines.md is up to date.");
    return 0;
  }
  console.error(`docs/machines.md is out of date (first difference at line ${diff.line}):`);
  console.error(`  expected: ${JSON.stringify(diff.expected ?? "<end of file>")}`);
  console.error(`  found:    ${JSON.stringify(diff.actual ?? "<end of file>")}`);
  console.error("Run `npm run docs:machines` to regenerate it.");
  return 1;
}

function invokedDirectly() {
  try {
    return realpathSync(process.argv[1] ?? "") === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
