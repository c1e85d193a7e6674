// A start failure is printed once: the child's last stderr lines appear in the WorkerStartError's
// message and nowhere else in what `console.error(err)` prints (the cause says only how it ended).
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { ParentWorker, WorkerExitedError, WorkerStartError } from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";

const count = (text: string, part: string): number => text.split(part).length - 1;

describe("a child that exits before it is ready", () => {
  it("has its stderr tail in the error once: message, cause, String(err) and console.error's rendering", async () => {
    const worker = ParentWorker.spawn(fixture("exit-early.mjs"), "node", { onOutput: () => {} });
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.cause).toBeInstanceOf(WorkerExitedError);
    const cause = error.cause as WorkerExitedError;

    for (const line of ["exit-early: config file missing", "exit-early: last words without newline"]) {
      expect(count(error.message, line)).toBe(1);
      expect(count(cause.message, line)).toBe(0);
      expect(count(`${String(error)}\n${String(cause)}`, line)).toBe(1);
      expect(count(inspect(error, { depth: 10 }), line)).toBe(1); // what console.error(err) prints
    }
    expect(cause.message).toBe(`Worker 'exit-early.mjs' exited with code 2`);
    expect(error.message.split("\n")[0]).toBe(`Worker 'exit-early.mjs' exited with code 2 before it was ready`);
    // The lines stay available as data on the cause.
    expect(cause.stderrTail).toEqual(["exit-early: config file missing", "exit-early: last words without newline"]);
    expect(cause.exitCode).toBe(2);
  });
});
