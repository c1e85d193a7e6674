/** Plain-text tables and the number formats the CLI prints (no escape codes: callers may style whole cells). */

/**
 * Rows padded into columns, the header first. `style` may wrap a cell's padded text (colour on a
 * TTY); widths are measured on the plain text.
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  style?: (text: string, column: number, row: readonly string[]) => string,
): string[] {
  // Cells may hold what others wrote (registry entries): control characters are shown, never obeyed.
  rows = rows.map((row) => row.map(printable));
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[], styled: boolean): string =>
    cells
      .map((cell, column) => {
        const padded = column === cells.length - 1 ? cell : cell.padEnd(widths[column]!);
        return styled && style ? style(padded, column, cells) : padded;
      })
      .join("  ")
      .trimEnd();
  return [line(headers, false), ...rows.map((row) => line(row, true))];
}

/** Control characters (escape sequences, newlines) as visible `\u001b`-style escapes. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** "850ms", "12s", "4m 05s", "3h 20m", "2d 4h". */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Milliseconds with a precision that fits the value; "-" when unknown. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 100) return `${ms.toFixed(1)}ms`;
  if (ms < 10_000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(1)}s`;
}

/** "12.3 MiB"; "-" when unknown. */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** "3.5%"; "-" when unknown. */
export function formatPercent(percent: number | undefined): string {
  return percent === undefined || !Number.isFinite(percent) ? "-" : `${percent.toFixed(1)}%`;
}

/** A rate per second, e.g. calls/s: "0", "12.5", "1.2k". */
export function formatRate(perSecond: number | undefined): string {
  if (perSecond === undefined || !Number.isFinite(perSecond)) return "-";
  if (perSecond >= 1000) return `${(perSecond / 1000).toFixed(1)}k`;
  if (perSecond >= 100 || perSecond === 0) return String(Math.round(perSecond));
  return perSecond.toFixed(1);
}
