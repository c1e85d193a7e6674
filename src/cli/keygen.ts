import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { curveKeyPair, keysDir, saveCurveKeys } from "../actors/curve.js";
import { CliExit, EXIT } from "./exit.js";

interface KeygenFlags {
  dir?: string;
  force?: boolean;
  json?: boolean;
}

/** `multifrost keygen [name]`: a CURVE key pair written with saveCurveKeys. */
export function addKeygenCommand(program: Command): void {
  program
    .command("keygen")
    .description("create a CURVE key pair: <name>.pub and <name>.key (0600) in the keys directory")
    .argument("[name]", "the key pair's name (what a worker's `curve` option names)", "multifrost")
    .option("--dir <dir>", "the keys directory (default: $MULTIFROST_KEYS_DIR, else ~/.multifrost/keys)")
    .option("--force", "replace a key pair of that name (its old keys stop working)")
    .option("--json", "print { name, publicKey, publicFile, secretFile } as JSON")
    .action((name: string, flags: KeygenFlags) => {
      const folder = keysDir(flags.dir);
      // A name saveCurveKeys refuses is reported by it, below; only a valid one is looked up.
      const valid = /^[\w.-]+$/.test(name) && !name.startsWith(".");
      const existing = (valid ? [`${name}.pub`, `${name}.key`] : []).map((file) => join(folder, file)).filter((file) => existsSync(file));
      if (existing.length > 0 && !flags.force) {
        throw new CliExit(EXIT.failure, `${existing.join(" and ")} already exist${existing.length === 1 ? "s" : ""}; pass --force to replace the key pair`);
      }
      let saved: { publicFile: string; secretFile: string };
      const pair = curveKeyPair();
      try {
        saved = saveCurveKeys(name, pair, flags.dir);
      } catch (error) {
        throw new CliExit(EXIT.usage, (error as Error).message);
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ name, publicKey: pair.publicKey, ...saved }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`public key:  ${pair.publicKey}\npublic file: ${saved.publicFile}\nsecret file: ${saved.secretFile} (keep it secret)\n`);
    });
}
