import { InvalidArgumentError } from "../errors.js";
import { parseRegistryUrl, REGISTRY_ENV } from "../registry/open-registry.js";
import { CliExit, EXIT } from "./exit.js";

/** `--registry <url>`'s help text, the same for every command. */
export const REGISTRY_FLAG_HELP = "the registry as a URL: file:///dir or etcd://host:port[,host:port…][/prefix] (default: $MULTIFROST_REGISTRY)";

/** Checks `--registry` (or `$MULTIFROST_REGISTRY` when it is not given): a bad URL is a usage error (exit 2). */
export function checkRegistryFlag(url: string | undefined): void {
  const setting = url ?? process.env[REGISTRY_ENV];
  if (setting === undefined || setting === "") return;
  try {
    parseRegistryUrl(setting);
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new CliExit(EXIT.usage, `${url === undefined ? "$MULTIFROST_REGISTRY: " : ""}${error.message}`);
    throw error;
  }
}
