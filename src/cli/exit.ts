/**
 * The exit codes of the `multifrost` command, and the error that carries one up to `main`.
 * 0 done (or stopped by SIGTERM), 1 a failure (remote error, a tree that failed, I/O),
 * 2 a usage or configuration error, 3 service not found, 130 stopped by Ctrl-C (SIGINT).
 */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2, notFound: 3, interrupted: 130 });

/** Thrown by a command to end the program with `code` after printing `message` on stderr. */
export class CliExit extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = "CliExit";
    this.code = code;
  }
}

/** Prints to stderr with the program's name in front of every line. */
export function printError(message: string): void {
  process.stderr.write(`${message.split("\n").map((line) => `multifrost: ${line}`).join("\n")}\n`);
}

/** Waits until stdout and stderr have taken what was written, then exits: output piped to another process is never cut. */
export async function exitAfterFlush(code: number): Promise<never> {
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve();
    else stream.write("", () => resolve());
  });
}
