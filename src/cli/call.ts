import { checkRegistryFlag, REGISTRY_FLAG_HELP } from "./registry-flag.js";
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { ParentWorker } from "../parent/parent-worker.js";
import { closeOpenedRegistries } from "../registry/open-registry.js";
import { EncodeError, InvalidArgumentError, RemoteCallError, ServiceNotFoundError } from "../errors.js";
import { CliExit, EXIT } from "./exit.js";
import { formatResult, parseArgument } from "./values.js";

interface CallFlags {
  timeout?: number;
  namespace?: string;
  registryDir?: string;
  registry?: string;
  stack?: boolean;
  curve?: string;
}

/** `multifrost call <service-id> <function> [args…]`: one call to a registered service, its result as JSON on stdout. */
export function addCallCommand(program: Command): void {
  program
    .command("call")
    .description("call a function of a registered (connect-mode) service and print its result as JSON")
    .argument("<service-id>", "the id the service registered under")
    .argument("<function>", "the function to call")
    .argument("[args...]", "arguments: JSON where they parse (5, true, [1,2], '{\"a\":1}'), else strings; 123n is a BigInt, {\"$bin\":\"<base64>\"} bytes")
    .option("--timeout <ms>", "how long to wait for the answer, in ms (default 30000)", positiveNumber)
    .option("--namespace <ns>", "the namespace the call is for (default: \"default\")")
    .option("--curve <name>", "call a CURVE service with this client key pair (from the keys directory; see keygen)")
    .option("--stack", "with a remote error, print the remote stack (or Python traceback) too")
    .option("--registry-dir <dir>", "the registry directory (default: $MULTIFROST_REGISTRY_DIR, else ~/.multifrost)")
    .option("--registry <url>", REGISTRY_FLAG_HELP)
    .addHelpText(
      "after",
      "\nExit codes: 0 the result was printed, 1 the function raised (stderr has the error) or the call failed, 3 no such service.",
    )
    .action(async (serviceId: string, functionName: string, args: string[], flags: CallFlags) => {
      const result = await callService(serviceId, functionName, args.map(parseArgument), flags);
      process.stdout.write(`${formatResult(result)}\n`);
    });
}

async function callService(serviceId: string, functionName: string, args: unknown[], flags: CallFlags): Promise<unknown> {
  checkRegistryFlag(flags.registry);
  let worker: ParentWorker;
  try {
    worker = await ParentWorker.connect(serviceId, 0, {
      ...(flags.registryDir !== undefined && { registryDir: flags.registryDir }),
      ...(flags.registry !== undefined && { registry: flags.registry }),
      ...(flags.namespace !== undefined && { namespace: flags.namespace }),
      ...(flags.curve !== undefined && { curve: flags.curve }),
      autoRestart: false,
      onOutput: () => undefined,
    });
  } catch (error) {
    if (error instanceof ServiceNotFoundError) {
      throw new CliExit(EXIT.notFound, `no live service '${serviceId}' in the registry`);
    }
    throw error;
  }
  try {
    await worker.start();
    return await worker.invoke(functionName, args, {
      ...(flags.timeout !== undefined && { timeout: flags.timeout }),
      ...(flags.namespace !== undefined && { namespace: flags.namespace }),
    });
  } catch (error) {
    if (error instanceof RemoteCallError) {
      const stack = flags.stack && error.remoteStack ? `\n${error.remoteStack}` : "";
      throw new CliExit(EXIT.failure, `${serviceId}.${functionName} raised ${error.remoteType}: ${error.remoteMessage}${stack}`);
    }
    if (error instanceof EncodeError || error instanceof InvalidArgumentError) throw new CliExit(EXIT.usage, error.message);
    throw error;
  } finally {
    await worker.stop().catch(() => undefined);
    await closeOpenedRegistries();
  }
}

export function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new CommanderInvalidArgument("must be a number > 0");
  return value;
}
