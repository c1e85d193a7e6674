import { checkRegistryFlag, REGISTRY_FLAG_HELP } from "./registry-flag.js";
import { closeOpenedRegistries } from "../registry/open-registry.js";
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.js";
import type { OutputStream } from "../parent/options.js";
import { loadTree } from "../supervision/load-tree.js";
import type { SupervisorSpec } from "../supervision/spec.js";
import { supervise, type SupervisionTree } from "../supervision/tree.js";
import { workersOf } from "../supervision/tree-snapshot.js";
import { CliExit, EXIT, exitAfterFlush, printError } from "./exit.js";
import { parsePort, startDashboard, startHealth, type UpServer } from "./up-servers.js";
import { logView, ttyView, type UpView } from "./views.js";

interface UpFlags {
  dashboard?: true | number;
  health?: number;
  registry?: string;
}

/** `multifrost up <tree-file>`: runs a supervision tree from a file until Ctrl-C, SIGTERM or the tree fails. */
export function addUpCommand(program: Command): void {
  program
    .command("up")
    .description("start the supervision tree of a .json/.yaml file and keep it running; a live table on a TTY, log lines otherwise")
    .argument("<tree>", "the tree file (.json, .yaml or .yml; see loadTree)")
    .option("--dashboard [port]", "serve the live dashboard on 127.0.0.1 (default: any free port) and print its URL", parsePort)
    .option("--health <port>", "serve /healthz, /readyz, /metrics and /tree on 127.0.0.1:<port> (0: any free port)", parsePort)
    .option("--registry <url>", REGISTRY_FLAG_HELP)
    .addHelpText(
      "after",
      "\nCtrl-C or SIGTERM stops the tree in order (workers last started first) and leaves no process.\n" +
        "Exit codes: 0 stopped by SIGTERM, 130 stopped by Ctrl-C (SIGINT), 1 the tree failed (its\n" +
        "restart intensity was exceeded, or it could not start), 2 the tree file is invalid.",
    )
    .action(async (file: string, flags: UpFlags) => {
      await exitAfterFlush(await runUp(file, flags));
    });
}

async function runUp(file: string, flags: UpFlags): Promise<number> {
  let spec: SupervisorSpec;
  let tree: SupervisionTree;
  const tty = process.stdout.isTTY === true;
  let view: UpView | undefined;
  const onOutput = (stream: OutputStream, line: string, workerName: string): void => view?.output(stream, line, workerName);
  try {
    spec = await loadTree(file);
    // On a TTY worker output goes through the view, so that it scrolls above the table instead of tearing it.
    checkRegistryFlag(flags.registry);
    tree = supervise(tty ? withOutput(spec, onOutput) : spec, flags.registry === undefined ? {} : { registry: flags.registry });
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new CliExit(EXIT.usage, error.message);
    throw error;
  }
  view = tty ? ttyView(tree, `multifrost up ${file}`) : logView(tree);
  const servers: UpServer[] = [];
  let stopping: Promise<number> | undefined;
  let settle!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (settle = resolve));

  const stop = (code: number, why: string, failure: boolean): void => {
    if (stopping !== undefined) {
      if (!failure) view?.note(`${why} — still stopping the tree…`);
      return;
    }
    stopping = (async () => {
      view?.note(`${why} — stopping the tree…`);
      await tree.stop().catch((error: unknown) => view?.note(`stop: ${(error as Error).message}`));
      await closeOpenedRegistries();
      await Promise.all(servers.map((server) => server.close().catch(() => undefined)));
      view?.note("stopped: no process of the tree is left");
      view?.close();
      if (failure) printError(why);
      return code;
    })();
    void stopping.then(settle);
  };
  process.on("SIGINT", () => stop(EXIT.interrupted, "SIGINT", false));
  process.on("SIGTERM", () => stop(EXIT.ok, "SIGTERM", false));
  tree.subscribe((event) => {
    if (event.path === tree.root.path && event.to === "failed") stop(EXIT.failure, `the tree failed: ${event.reason}`, true);
  });

  try {
    if (flags.health !== undefined) {
      const server = await startHealth(tree, flags.health);
      servers.push(server);
      view.note(`health: ${server.url}/healthz  ${server.url}/readyz  ${server.url}/metrics  ${server.url}/tree`);
    }
    if (flags.dashboard !== undefined) {
      const server = await startDashboard(tree, flags.dashboard === true ? undefined : flags.dashboard);
      servers.push(server);
      view.note(`dashboard: ${server.url}`);
    }
  } catch (error) {
    const message = error instanceof CliExit ? error.message : (error as Error).message;
    stop(error instanceof CliExit ? error.code : EXIT.failure, message, true);
    return finished;
  }
  if (stopping === undefined) {
    tree.start().then(
      () => {
        if (stopping === undefined) view?.note(`started: ${tree.root.path} ${tree.state} (${plural(workersOf(tree.snapshot()).length, "worker")})`);
      },
      (error: unknown) => stop(EXIT.failure, `the tree failed to start: ${(error as Error).message}`, true),
    );
  }
  return finished;
}

/** The spec with `onOutput` on every worker and pool (a tree file cannot hold functions). */
function withOutput(spec: SupervisorSpec, onOutput: (stream: OutputStream, line: string, workerName: string) => void): SupervisorSpec {
  return {
    ...spec,
    children: spec.children.map((child) => ("children" in child ? withOutput(child, onOutput) : { ...child, onOutput })),
  };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
