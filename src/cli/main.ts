#!/usr/bin/env node
/**
 * The `multifrost` command: `up` (run a supervision tree from a file), `services` (the registry),
 * `call` (call a service from the shell), `keygen` (CURVE keys). Arguments are parsed by
 * commander; each command lives in its own file and reports failures as a `CliExit` with its exit
 * code (see exit.ts and docs/cli.md).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { MultifrostError } from "../errors.js";
import { addCallCommand } from "./call.js";
import { CliExit, EXIT, exitAfterFlush, printError } from "./exit.js";
import { addKeygenCommand } from "./keygen.js";
import { addServicesCommand } from "./services.js";
import { addUpCommand } from "./up.js";

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return manifest.version;
}

export function createProgram(): Command {
  const program = new Command("multifrost")
    .description("Run supervision trees of workers, list and call services, make CURVE keys.")
    .version(packageVersion(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help (also: multifrost <command> --help)")
    .helpCommand("help [command]", "show help for a command")
    .showSuggestionAfterError(true)
    .exitOverride();
  addUpCommand(program);
  addServicesCommand(program);
  addCallCommand(program);
  addKeygenCommand(program);
  // Every subcommand reports usage errors the same way (exit code 2, see below).
  for (const command of program.commands) command.exitOverride();
  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv as string[]);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version have printed and end with 0; a usage error has been printed by commander.
      // `multifrost` without a command prints the help on stderr: a usage error too.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliExit) {
      printError(error.message);
      return error.code;
    }
    printError(error instanceof MultifrostError ? `${error.message}` : String((error as Error)?.stack ?? error));
    return EXIT.failure;
  }
}

await exitAfterFlush(await main(process.argv));
