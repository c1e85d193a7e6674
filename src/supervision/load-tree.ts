import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import { InvalidArgumentError } from "../errors.js";
import { checkTree } from "./check-spec.js";
import type { Key } from "./spec-fields.js";
import type { ChildSpec, PoolSpec, SupervisorSpec, WorkerSpec } from "./spec.js";

/**
 * Trees from files: `loadTree("tree.yaml")` reads a JSON or YAML tree, checks it (every error
 * names the file, the line:column and the child's path) and resolves relative paths against the
 * file's folder, so a tree means the same whatever the process's cwd. YAML is parsed by the
 * `yaml` package (YAML 1.2 core schema, plus `<<` merge keys so that children can share
 * settings through anchors); JSON by `JSON.parse`, with `yaml` only for positions and duplicates.
 */

type Format = "json" | "yaml";

/** Reads, checks and resolves a `.json`, `.yaml` or `.yml` tree file; throws `InvalidArgumentError` naming the file. */
export async function loadTree(file: string): Promise<SupervisorSpec> {
  formatOf(file);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a folder" : (error as Error).message;
    throw new InvalidArgumentError(`loadTree(): cannot read the tree file ${file} (${path.resolve(file)}): ${reason}`);
  }
  return loadTreeText(text, file, path.dirname(path.resolve(file)));
}

/** `loadTree` on text already read: `fileName` names it in errors and tells the format; relative paths resolve against `baseDir`. */
export function loadTreeText(text: string, fileName: string, baseDir: string): SupervisorSpec {
  const format = formatOf(fileName);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: format === "yaml", uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `${fileName}:${line}:${col}`;
  };
  let value: unknown;
  if (format === "json") {
    value = parseJson(text, (message, offset) => {
      // V8 gives no position for some messages ("Unexpected token"); yaml's parser usually has one.
      const known = offset ?? doc.errors[0]?.pos[0];
      return new InvalidArgumentError(`${known === undefined ? fileName : at(known)}: invalid JSON: ${message}`);
    });
    // JSON.parse keeps the last of two equal keys without a word; a tree file is checked like code.
    const duplicate = doc.errors.find((error) => error.code === "DUPLICATE_KEY");
    if (duplicate) throw new InvalidArgumentError(`${at(duplicate.pos[0])}: a key appears twice in the same object`);
  } else {
    if (doc.errors.length > 0) {
      throw new InvalidArgumentError(doc.errors.slice(0, 5).map((error) => `${at(error.pos[0])}: invalid YAML: ${error.message}`).join("\n"));
    }
    value = doc.toJS({ maxAliasCount: 100 });
  }
  const positions = doc.errors.length === 0;
  const spec = checkTree(value, {
    name: fileName,
    locate: (keys, where) => {
      if (!positions) return undefined;
      const offset = offsetOf(doc, keys, where);
      return offset === undefined ? undefined : lineCounter.linePos(offset);
    },
  });
  return resolveSupervisor(spec, baseDir);
}

function formatOf(file: string): Format {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") return "json";
  if (ext === ".yaml" || ext === ".yml") return "yaml";
  throw new InvalidArgumentError(`loadTree(): ${file}: a tree file must end in .json, .yaml or .yml`);
}

function parseJson(text: string, invalid: (message: string, offset: number | undefined) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const position = /at position (\d+)/.exec(message);
    const reason = message.replace(/\s*(in JSON )?at position \d+( \(line \d+ column \d+\))?/, "");
    throw invalid(reason, position ? Number(position[1]) : undefined);
  }
}

/** Where the node at `keys` starts; the deepest node found when the path leaves the document (a merged key). */
function offsetOf(doc: Document, keys: readonly Key[], where: "key" | "value"): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const [i, key] of keys.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (pair === undefined) return offset;
      if (i === keys.length - 1 && where === "key") return rangeStart(pair.key) ?? offset;
      next = pair.value;
    } else if (isSeq(node) && typeof key === "number") {
      next = node.items[key];
    }
    const start = rangeStart(next);
    if (start === undefined) return offset;
    node = next;
    offset = start;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null | undefined)?.range;
  return range?.[0];
}

// --- Relative paths mean "next to the tree file" -------------------------------------------------

function resolveSupervisor(spec: SupervisorSpec, baseDir: string): SupervisorSpec {
  return { ...spec, children: spec.children.map((child) => resolveChildPaths(child, baseDir)) };
}

function resolveChildPaths(child: ChildSpec, baseDir: string): ChildSpec {
  if ("children" in child) return resolveSupervisor(child, baseDir);
  const { spawn, executable, cwd, registryDir } = child;
  const spec: WorkerSpec | PoolSpec = { ...child };
  if (spawn !== undefined) spec.spawn = resolveScript(spawn, baseDir);
  if (typeof executable === "string") spec.executable = resolveCommand(executable, baseDir);
  else if (executable !== undefined && isRelativeCommand(executable[0] ?? "")) {
    spec.executable = [path.resolve(baseDir, executable[0]!), ...executable.slice(1)];
  }
  return {
    ...spec,
    ...(cwd !== undefined && { cwd: path.resolve(baseDir, cwd) }),
    ...(registryDir !== undefined && { registryDir: path.resolve(baseDir, registryDir) }),
  };
}

/**
 * `spawn` is read as a command line by `ParentWorker.spawn` (script, then arguments), unless the
 * whole string names a file. Only the script word is made absolute; one starting with '-'
 * (`-m package.module`) is an interpreter flag and is left alone.
 */
function resolveScript(spawn: string, baseDir: string): string {
  if (path.isAbsolute(spawn.trim())) return spawn;
  const whole = path.resolve(baseDir, spawn.trim());
  if (existsSync(whole)) return whole;
  return replaceFirstWord(spawn, (word) => (word.startsWith("-") || path.isAbsolute(word) ? undefined : path.resolve(baseDir, word)));
}

/** A command (`./venv/bin/python -u`) is resolved only when it starts with ./ or ../; a bare name is looked up on PATH. */
function resolveCommand(command: string, baseDir: string): string {
  return replaceFirstWord(command, (word) => (isRelativeCommand(word) ? path.resolve(baseDir, word) : undefined));
}

function isRelativeCommand(word: string): boolean {
  return /^\.\.?[\\/]/.test(word);
}

/** Replaces the first word of a command line, read with `splitCommandLine`'s quoting rules, keeping the rest verbatim. */
function replaceFirstWord(command: string, replace: (word: string) => string | undefined): string {
  let i = command.length - command.trimStart().length;
  const start = i;
  let word = "";
  let quote: string | undefined;
  for (; i < command.length; i++) {
    const ch = command[i]!;
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"' && i + 1 < command.length) word += command[++i];
      else word += ch;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "\\" && i + 1 < command.length) word += command[++i];
    else if (/\s/.test(ch)) break;
    else word += ch;
  }
  const replacement = word === "" ? undefined : replace(word);
  if (replacement === undefined) return command;
  const quoted = /[\s"'\\]/.test(replacement) ? `"${replacement.replace(/["\\]/g, "\\$&")}"` : replacement;
  return command.slice(0, start) + quoted + command.slice(i);
}
