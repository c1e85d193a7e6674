import type { WorkerSnapshot } from "../parent/worker-snapshot.js";
import type { NodeSnapshot, SupervisorSnapshot } from "../supervision/tree-snapshot.js";
import { formatBytes, formatMs, formatPercent, formatRate, formatTable } from "./table.js";

/** The columns of `multifrost up`'s live view, one row per supervisor, pool and worker. */
export const TREE_HEADERS = ["PATH", "STATE", "PID", "RESTARTS", "CALLS/S", "P99", "RTT", "CPU", "RSS"] as const;

/**
 * Turns successive `tree.snapshot()`s into table rows; it remembers each worker's call count from
 * the previous snapshot to show calls per second.
 */
export class TreeTable {
  readonly #previous = new Map<string, { calls: number; at: number }>();

  /** The rows for this snapshot (taken at `now`, ms). */
  rows(snapshot: SupervisorSnapshot, now: number = Date.now()): string[][] {
    const rows: string[][] = [];
    const seen = new Set<string>();
    const visit = (node: NodeSnapshot): void => {
      if (node.kind === "worker") {
        seen.add(node.path);
        rows.push(this.#workerRow(node, now));
        return;
      }
      rows.push([node.path, node.state, "", String(node.restarts), "", "", "", "", ""]);
      node.children.forEach(visit);
    };
    visit(snapshot);
    for (const path of this.#previous.keys()) if (!seen.has(path)) this.#previous.delete(path);
    return rows;
  }

  /** The whole table as lines, with `style` applied per cell (see formatTable). */
  render(snapshot: SupervisorSnapshot, style?: (text: string, column: number, row: readonly string[]) => string): string[] {
    return formatTable(TREE_HEADERS, this.rows(snapshot), style);
  }

  #workerRow(worker: WorkerSnapshot, now: number): string[] {
    const calls = worker.calls.ok + worker.calls.failed;
    const previous = this.#previous.get(worker.path);
    this.#previous.set(worker.path, { calls, at: now });
    const elapsed = previous === undefined ? 0 : (now - previous.at) / 1000;
    const rate = previous === undefined || elapsed <= 0 ? undefined : Math.max(0, calls - previous.calls) / elapsed;
    return [
      worker.path,
      worker.state,
      worker.pid === undefined ? "-" : String(worker.pid),
      String(worker.restarts),
      formatRate(rate),
      formatMs(worker.latencyMs.p99),
      formatMs(worker.heartbeatRttMs),
      formatPercent(worker.cpuPercent),
      formatBytes(worker.rssBytes),
    ];
  }
}
