import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { EncodeError, WorkerExitedError } from "../src/index.js";
import { fixture, rejectionOf, workerTracker } from "./helpers/fixtures.js";

const HUGE_REPLY = fixture("attacker/huge_reply_child.py");
const MATH = fixture("math-worker.mjs");
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const workers = workerTracker();

afterEach(async () => {
  await workers.stopAll();
});

function rssBytes(): number {
  const status = readFileSync("/proc/self/status", "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe("the parent's limits", () => {
  it("a hostile child's 200 MB reply fails the call fast with WorkerExitedError; the parent stays bounded", async () => {
    const w = workers.spawn(HUGE_REPLY, PYTHON, { heartbeatIntervalMs: 0 });
    await w.start();
    const before = rssBytes();
    const started = Date.now();
    const error = await rejectionOf(w.call.withOptions({ timeout: 60_000 }).anything());
    expect(error).toBeInstanceOf(WorkerExitedError);
    expect(error.message).toMatch(/maxMessageSize/);
    expect(Date.now() - started).toBeLessThan(10_000);
    // zeromq refuses the message from its header: it is never held whole in this process.
    expect(rssBytes() - before).toBeLessThan(100 * 1024 * 1024);
    expect(rssBytes()).toBeLessThan(300 * 1024 * 1024);
  });

  it("a call bigger than maxMessageSize is refused with EncodeError before anything is sent", async () => {
    const w = workers.spawn(MATH, "node", { maxMessageSize: 1024 * 1024 });
    await w.start();
    const error = await rejectionOf(w.call.echo(Buffer.alloc(2 * 1024 * 1024)));
    expect(error).toBeInstanceOf(EncodeError);
    expect(error.message).toMatch(/over maxMessageSize/);
    expect(await w.call.add(1, 2)).toBe(3);
  });

  it("calls beyond maxPendingCalls fail at once with WorkerUnavailableError", async () => {
    const w = workers.spawn(MATH, "node", { maxPendingCalls: 10 });
    await w.start();
    const calls = Array.from({ length: 12 }, () => w.call.add(1, 1).then(() => "ok", (e: Error) => e.name));
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(10);
    expect(outcomes.filter((o) => o === "WorkerUnavailableError")).toHaveLength(2);
  });
});
