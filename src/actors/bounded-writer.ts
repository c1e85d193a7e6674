/**
 * Writes lines to a stream without letting a slow reader grow memory: once more than
 * `maxPendingBytes` wait in the stream's buffer (a pipe nobody reads), lines are dropped and
 * counted. When the buffer has drained, one line says how many were lost, then writing resumes.
 * Node buffers every `write()` it cannot pass on at once (stdout on a full pipe included), so
 * without this a process printing to an unread pipe grows by what it prints.
 */
export interface BoundedWriterTarget {
  readonly writableLength: number;
  readonly writableHighWaterMark?: number;
  once(event: "drain", listener: () => void): unknown;
}

export interface BoundedWriterOptions {
  /** Bytes the stream may hold unwritten before lines are dropped. @default 1 MiB */
  readonly maxPendingBytes?: number;
  /** Writes text to the stream (default: `target.write`); lets a caller bypass a hooked `write`. */
  readonly write?: (text: string) => unknown;
  /** The line that reports a loss (newline added). */
  readonly lossLine?: (dropped: number) => string;
}

export const BOUNDED_WRITER_DEFAULTS = Object.freeze({ maxPendingBytes: 1024 * 1024 });

export class BoundedWriter {
  readonly #target: BoundedWriterTarget;
  readonly #write: (text: string) => unknown;
  readonly #maxPendingBytes: number;
  readonly #lossLine: (dropped: number) => string;
  /** Lines dropped since the last loss line. */
  #unreported = 0;
  #dropped = 0;
  #waitingForDrain = false;

  constructor(target: BoundedWriterTarget & { write(text: string): unknown }, options: BoundedWriterOptions = {}) {
    this.#target = target;
    this.#write = options.write ?? ((text) => target.write(text));
    // Below the stream's own high-water mark, "drain" would never be promised.
    this.#maxPendingBytes = Math.max(options.maxPendingBytes ?? BOUNDED_WRITER_DEFAULTS.maxPendingBytes, target.writableHighWaterMark ?? 0);
    this.#lossLine = options.lossLine ?? ((n) => `[multifrost] ${n} output line${n === 1 ? "" : "s"} dropped: the stream was not read fast enough`);
  }

  /** Lines dropped so far. */
  get linesDropped(): number {
    return this.#dropped;
  }

  /** Writes `text` (one or more whole lines); false when it was dropped. */
  write(text: string, lines = 1): boolean {
    // Past the bound, a write has returned false (the bound is above the stream's high-water
    // mark), so "drain" will come. One write may overshoot the bound by its own length.
    if (this.#waitingForDrain || this.#target.writableLength >= this.#maxPendingBytes) {
      this.#drop(lines);
      return false;
    }
    this.#write(text);
    return true;
  }

  #drop(lines: number): void {
    this.#dropped += lines;
    this.#unreported += lines;
    if (this.#waitingForDrain) return;
    // Until the buffer has emptied: resuming at the bound would drop every other line.
    this.#waitingForDrain = true;
    this.#target.once("drain", () => this.#drained());
  }

  #drained(): void {
    if (!this.#waitingForDrain) return;
    this.#waitingForDrain = false;
    const lost = this.#unreported;
    this.#unreported = 0;
    if (lost > 0) this.#write(`${this.#lossLine(lost)}\n`);
  }
}

const stdio: { stdout?: BoundedWriter; stderr?: BoundedWriter } = {};

/**
 * One bounded writer per standard stream for the whole process, so that every worker printing
 * there shares the bound (and one "drain" listener, not one per worker).
 */
export function stdioWriter(stream: "stdout" | "stderr"): BoundedWriter {
  return (stdio[stream] ??= new BoundedWriter(stream === "stdout" ? process.stdout : process.stderr, {
    lossLine: (n) => `[multifrost] ${n} output line${n === 1 ? "" : "s"} dropped: ${stream} was not read fast enough`,
  }));
}
