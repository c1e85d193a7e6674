import { stdioWriter } from "../actors/bounded-writer.js";
import type { OutputStream, ParentOptions } from "./options.js";

/**
 * Where a worker's output lines go: the ParentWorker's `stdout`/`stderr` events, then the user's
 * `onOutput`, or by default this process's stdout/stderr with the worker's name in front.
 */
export class OutputPrinter {
  readonly #name: string;
  readonly #emit: (stream: OutputStream, line: string) => void;
  readonly #options: Pick<ParentOptions, "onOutput">;
  /** Lines the default printing dropped: this process's stdout/stderr was not read fast enough. */
  #dropped = 0;

  constructor(name: string, emit: (stream: OutputStream, line: string) => void, options: Pick<ParentOptions, "onOutput">) {
    this.#name = name;
    this.#emit = emit;
    this.#options = options;
  }

  get dropped(): number {
    return this.#dropped;
  }

  output(stream: OutputStream, line: string): void {
    this.#emit(stream, line);
    if (this.#options.onOutput) {
      this.#options.onOutput(stream, line, this.#name);
      return;
    }
    // Bounded: a pipe nobody reads holds at most 1 MiB; the rest is dropped, then reported in one line.
    if (!stdioWriter(stream).write(`[${this.#name} ${stream.toUpperCase()}]: ${line}\n`)) this.#dropped++;
  }
}
