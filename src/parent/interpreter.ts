import { extname } from "node:path";
import { splitCommandLine } from "../actors/command-line.js";
import { InvalidArgumentError } from "../errors.js";

/** Names the Python interpreter `spawn("worker.py")` runs when no executable is given. */
export const PYTHON_ENV = "MULTIFROST_PYTHON";

/**
 * The executable `ParentWorker.spawn(scriptPath)` runs when it is given none, chosen by the
 * script's extension (an explicit executable always wins; this is not consulted then):
 *
 * - `.py` → `$MULTIFROST_PYTHON` (may hold several words, e.g. `"uv run python"`), else `python3`;
 * - `.mjs`, `.js`, `.cjs` and anything else (no extension, as v4 did) → this Node binary;
 * - `.ts`, `.mts`, `.cts` → InvalidArgumentError: Node cannot run them as they are.
 *
 * `scriptPath` is read as `spawn` reads it: a command line whose first word is the script.
 */
export function defaultInterpreter(scriptPath: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const script = splitCommandLine(scriptPath)[0] ?? scriptPath;
  const extension = extname(script).toLowerCase();
  switch (extension) {
    case ".py": {
      const python = splitCommandLine(env[PYTHON_ENV] ?? "");
      return python.length > 0 ? python : ["python3"];
    }
    case ".ts":
    case ".mts":
    case ".cts":
      throw new InvalidArgumentError(
        `spawn("${script}"): a TypeScript worker needs an executable that runs TypeScript — ` +
          `pass one, e.g. ParentWorker.spawn("${script}", "npx tsx"), or compile it to JavaScript and spawn the .js file`,
      );
    default:
      return [process.execPath];
  }
}
