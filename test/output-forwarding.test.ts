/**
 * Output forwarding: what a TS worker prints reaches each connected parent once per line, as
 * stdout/stderr messages — in spawn mode (without also arriving through the pipe) and in
 * connect mode (to every parent, but never twice, however many messages it has received).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { OutputStream } from "../src/index.js";
import { fixture, workerTracker } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";
import { serviceHarness } from "./helpers/services.js";

const PRINTER = fixture("printer-worker.mjs");
const tracked = workerTracker();

afterEach(() => tracked.stopAll());

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

function collector(): { lines: [OutputStream, string][]; onOutput: (stream: OutputStream, line: string) => void } {
  const lines: [OutputStream, string][] = [];
  return { lines, onOutput: (stream, line) => lines.push([stream, line]) };
}

const count = (lines: [OutputStream, string][], line: string): number => lines.filter(([, l]) => l === line).length;

describe("spawn mode", () => {
  it("forwards every line once, in order per stream, whatever printed it", async () => {
    const output = collector();
    const worker = tracked.spawn(PRINTER, "node", { onOutput: output.onOutput });
    await worker.start();
    expect(await worker.call.printAll()).toBe("printed");
    const expectedStdout = ["log line", "info line", "partial", "second", "multi", "line", "{ obj: 1 }"];
    const expectedStderr = ["error line", "warn line", "bytes line"];
    await waitFor(() => output.lines.length >= 1 + expectedStdout.length + expectedStderr.length, 5000, "all lines");
    expect(output.lines.filter(([s]) => s === "stdout").map(([, l]) => l)).toEqual(["booting before any parent", ...expectedStdout]);
    expect(output.lines.filter(([s]) => s === "stderr").map(([, l]) => l)).toEqual(expectedStderr);
    expect(await worker.call.forwarded()).toBe(expectedStdout.length + expectedStderr.length); // the rest came through the pipe
  });

  it("still sends a line once after many calls (v4 sent it once per message received)", async () => {
    const output = collector();
    const worker = tracked.spawn(PRINTER, "node", { onOutput: output.onOutput });
    await worker.start();
    for (let i = 0; i < 50; i++) await worker.call.noop();
    await worker.call.print("after fifty calls");
    await worker.call.noop(); // the output message was queued before this reply
    await waitFor(() => count(output.lines, "after fifty calls") >= 1, 5000, "the line");
    await worker.ping();
    expect(count(output.lines, "after fifty calls")).toBe(1);
  });
});

describe("connect mode", () => {
  const harness = serviceHarness("multifrost-output-");

  it("sends each line to every connected parent once, and forgets parents that left", async () => {
    const service = await harness.startService("printer", process.execPath, [PRINTER]);

    const outputs = [collector(), collector(), collector()];
    const parents = await Promise.all(outputs.map((o) => harness.connect("printer", 5000, { onOutput: o.onOutput })));
    await Promise.all(parents.map((p) => p.start())); // each has now been heard (heartbeat)
    for (let i = 0; i < 20; i++) await parents[i % 3]!.call.noop();

    await parents[0]!.call.print("to everyone");
    await Promise.all(parents.map((p) => p.call.noop()));
    await waitFor(() => outputs.every((o) => count(o.lines, "to everyone") >= 1), 5000, "every parent to get the line");
    await Promise.all(parents.map((p) => p.ping()));
    for (const o of outputs) expect(count(o.lines, "to everyone")).toBe(1);

    // A parent that disconnects is dropped; the others still get each line once.
    await parents[2]!.stop();
    await parents[0]!.call.print("after one left");
    await parents[1]!.call.print("and again");
    await waitFor(() => count(outputs[1]!.lines, "and again") >= 1 && count(outputs[0]!.lines, "and again") >= 1, 5000, "the lines");
    for (const o of outputs.slice(0, 2)) {
      expect(count(o.lines, "after one left")).toBe(1);
      expect(count(o.lines, "and again")).toBe(1);
    }
    expect(count(outputs[2]!.lines, "after one left")).toBe(0);

    // Printed before any parent had connected: on the service's own stdout, not lost.
    expect(service.stdout()).toContain("booting before any parent");
  });
});
