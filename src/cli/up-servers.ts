import { InvalidArgumentError } from "commander";
import type { SupervisionTree } from "../supervision/tree.js";
import { CliExit, EXIT } from "./exit.js";

/** A server `up` started next to the tree (health endpoint, dashboard): closed when the tree stops. */
export interface UpServer {
  readonly url: string;
  close(): Promise<void>;
}

/** `--health <port>`: /healthz, /readyz, /metrics and /tree for the tree. */
export async function startHealth(tree: SupervisionTree, port: number): Promise<UpServer> {
  try {
    return await tree.serveHealth({ port });
  } catch (error) {
    throw new CliExit(EXIT.failure, `cannot serve the health endpoint on port ${port}: ${(error as Error).message}`);
  }
}

/** `--dashboard [port]`: the live dashboard (`tree.serveDashboard()`) on 127.0.0.1. */
export async function startDashboard(tree: SupervisionTree, port: number | undefined): Promise<UpServer> {
  try {
    return await tree.serveDashboard(port === undefined ? {} : { port });
  } catch (error) {
    throw new CliExit(EXIT.failure, `cannot serve the dashboard${port === undefined ? "" : ` on port ${port}`}: ${(error as Error).message}`);
  }
}

/** Commander's parser for a TCP port (0: any free port). */
export function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new InvalidArgumentError("must be a port (an integer 0..65535)");
  }
  return port;
}
