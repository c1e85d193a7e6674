import { BoundedWriter } from "./bounded-writer.js";
import { LineSplitter } from "./line-splitter.js";

/**
 * Captures what this process writes to stdout/stderr — `console.*` writes through the streams,
 * so one hook catches both — and hands each complete line to `forward`. When `forward`
 * returns false (no parent to send to yet) the line goes to the real stream instead, so
 * nothing is lost and nothing is printed twice. Writes made while forwarding (an error inside
 * the send path) go to the real stream: no recursion. What goes to the real stream respects its
 * backpressure (`BoundedWriter`): a pipe nobody reads costs at most `maxPendingBytes`, the rest
 * is dropped and counted.
 */
export type ForwardLine = (stream: "stdout" | "stderr", line: string) => boolean;

type Write = typeof process.stdout.write;

export class OutputCapture {
  readonly #forward: ForwardLine;
  readonly #restore: (() => void)[] = [];
  readonly #splitters: LineSplitter[] = [];
  readonly #writers = new Map<"stdout" | "stderr", BoundedWriter>();
  readonly #maxPendingBytes: number | undefined;
  #forwarding = false;

  constructor(forward: ForwardLine, options: { maxPendingBytes?: number } = {}) {
    this.#forward = forward;
    this.#maxPendingBytes = options.maxPendingBytes;
  }

  /** Lines dropped because the real stream was not read fast enough. */
  get linesDropped(): number {
    let dropped = 0;
    for (const writer of this.#writers.values()) dropped += writer.linesDropped;
    return dropped;
  }

  /** Writes to the real stream, not to the parents (bounded like every local write). */
  printLocally(stream: "stdout" | "stderr", text: string): void {
    const writer = this.#writers.get(stream);
    if (writer) writer.write(text);
    else (stream === "stdout" ? process.stdout : process.stderr).write(text);
  }

  install(): void {
    if (this.#restore.length > 0) return;
    this.#hook(process.stdout, "stdout");
    this.#hook(process.stderr, "stderr");
  }

  /** Flushes partial lines and puts the real streams back. */
  uninstall(): void {
    for (const splitter of this.#splitters) splitter.flush();
    for (const restore of this.#restore.splice(0)) restore();
    this.#splitters.length = 0;
  }

  #hook(target: NodeJS.WriteStream, stream: "stdout" | "stderr"): void {
    const original: Write = target.write;
    const writer = new BoundedWriter(target, {
      maxPendingBytes: this.#maxPendingBytes,
      write: (text) => original.call(target, text),
    });
    this.#writers.set(stream, writer);
    const realWrite = (text: string): void => {
      writer.write(text);
    };
    const splitter = new LineSplitter((line) => {
      if (this.#forwarding) {
        realWrite(`${line}\n`);
        return;
      }
      this.#forwarding = true;
      try {
        if (!this.#forward(stream, line)) realWrite(`${line}\n`);
      } finally {
        this.#forwarding = false;
      }
    });
    this.#splitters.push(splitter);
    const replacement = function (this: unknown, chunk: unknown, encodingOrCallback?: unknown, callback?: unknown): boolean {
      const encoding = typeof encodingOrCallback === "string" ? (encodingOrCallback as BufferEncoding) : undefined;
      const done = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
      splitter.write(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(encoding ?? "utf8"));
      if (typeof done === "function") process.nextTick(done as () => void);
      return true;
    } as Write;
    target.write = replacement;
    this.#restore.push(() => {
      if (target.write === replacement) target.write = original;
    });
  }
}
