import { styleText } from "node:util";
import { createLogUpdate } from "log-update";
import type { OutputStream } from "../parent/options.js";
import type { TreeEvent } from "../supervision/node.js";
import type { SupervisionTree } from "../supervision/tree.js";
import { TreeTable } from "./tree-table.js";

/** What `multifrost up` shows while the tree runs: a live table on a TTY, log lines otherwise. */
export interface UpView {
  /** A line about the run (the health URL, "stopping…"): printed once, kept in the scrollback. */
  note(text: string): void;
  /** A line a worker printed. */
  output(stream: OutputStream, line: string, workerName: string): void;
  /** Stops redrawing; the last table stays on screen. */
  close(): void;
}

/** How often the TTY table is redrawn. */
export const REDRAW_MS = 500;

/** One transition as a log line: `2024-05-01T12:00:00.000Z root/math restarting -> spawning (killed by SIGKILL)`. */
export function transitionLine(event: TreeEvent): string {
  return `${new Date(event.at).toISOString()} ${event.path} ${event.from} -> ${event.to}${event.reason ? ` (${event.reason})` : ""}`;
}

/** Not a TTY: every transition of the tree, one line each, on stdout; worker output as the library prints it. */
export function logView(tree: SupervisionTree): UpView {
  const unsubscribe = tree.subscribe((event) => process.stdout.write(`${transitionLine(event)}\n`));
  return {
    note: (text) => process.stdout.write(`${text}\n`),
    output: (stream, line, workerName) => (stream === "stderr" ? process.stderr : process.stdout).write(`[${workerName} ${stream.toUpperCase()}]: ${line}\n`),
    close: unsubscribe,
  };
}

const STATE_COLOURS: Record<string, Parameters<typeof styleText>[0]> = {
  connected: "green",
  running: "green",
  degraded: "yellow",
  "half-open": "yellow",
  spawning: "cyan",
  connecting: "cyan",
  starting: "cyan",
  restarting: "yellow",
  "circuit-open": "red",
  failed: "red",
  stopping: "gray",
  stopped: "gray",
};

/**
 * A TTY: the tree as a table redrawn in place every REDRAW_MS by log-update; transitions and
 * worker output scroll above it (log-update's persist), so nothing is lost.
 */
export function ttyView(tree: SupervisionTree, title: string): UpView {
  const stream = process.stdout;
  // A terminal that reports no size (0×0: a serial console, `script` without a terminal of its
  // own) would get no frame at all from log-update: assume 120×50 there.
  const sized = {
    isTTY: true,
    write: (text: string) => stream.write(text),
    get columns() {
      return stream.columns || 120;
    },
    get rows() {
      return stream.rows || 50;
    },
  } as unknown as NodeJS.WriteStream;
  const update = createLogUpdate(sized, { showCursor: false });
  const table = new TreeTable();
  const colour = stream.hasColors?.() ?? false;
  const style = (text: string, column: number): string => {
    if (!colour || column !== 1) return text;
    const state = text.trim();
    const format = STATE_COLOURS[state];
    return format ? styleText(format, text) : text;
  };
  const draw = (): void => {
    const snapshot = tree.snapshot();
    update([`${title} · ${snapshot.path} ${snapshot.state} · ${new Date().toLocaleTimeString()} · Ctrl-C to stop`, "", ...table.render(snapshot, style)].join("\n"));
  };
  // persist() erases the frame to print above it: draw it again at once.
  const persist = (text: string): void => {
    update.persist(text);
    if (!closed) draw();
  };
  let closed = false;
  const unsubscribe = tree.subscribe((event) => persist(transitionLine(event)));
  const timer = setInterval(draw, REDRAW_MS);
  draw();
  return {
    note: persist,
    output: (outputStream, line, workerName) => persist(`[${workerName} ${outputStream.toUpperCase()}]: ${line}`),
    close: () => {
      if (closed) return;
      clearInterval(timer);
      unsubscribe();
      draw();
      closed = true;
      update.done();
    },
  };
}
