/** Turns a byte stream into lines; a trailing partial line is emitted by `flush()`. */
export class LineSplitter {
  #partial = "";
  readonly #onLine: (line: string) => void;
  readonly #maxLineLength: number;

  constructor(onLine: (line: string) => void, maxLineLength = 64 * 1024) {
    this.#onLine = onLine;
    this.#maxLineLength = maxLineLength;
  }

  write(chunk: string): void {
    let text = this.#partial + chunk;
    let newline: number;
    while ((newline = text.indexOf("\n")) >= 0) {
      this.#onLine(stripCarriageReturn(text.slice(0, newline)));
      text = text.slice(newline + 1);
    }
    // A child that never writes a newline must not grow this buffer without bound.
    while (text.length > this.#maxLineLength) {
      this.#onLine(text.slice(0, this.#maxLineLength));
      text = text.slice(this.#maxLineLength);
    }
    this.#partial = text;
  }

  flush(): void {
    if (this.#partial.length > 0) this.#onLine(stripCarriageReturn(this.#partial));
    this.#partial = "";
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}
