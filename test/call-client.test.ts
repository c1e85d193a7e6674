import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DealerChannel } from "../src/actors/zmq-channel.js";
import { siblingsToRestart } from "../src/core/strategy.js";
import { CallTimeoutError, ProtocolError, WorkerExitedError, WorkerNotRunningError } from "../src/errors.js";
import type { ConnectionEvent } from "../src/machines/connection.js";
import { CallClient } from "../src/parent/call-client.js";
import type { ParentOptions } from "../src/parent/options.js";
import { resolveOptions } from "../src/parent/resolve-options.js";
import { decodeFrame, encodeMessage } from "../src/wire/index.js";
import { rejectionOf } from "./helpers/fixtures.js";

/** A channel that keeps what it was asked to send; `taken` marks what zeromq "took". */
class FakeChannel {
  readonly sent: { bytes: Buffer; id: string | undefined }[] = [];
  /** How many of `sent` zeromq has taken; the rest are still queued (unsent). */
  taken = 0;
  send(bytes: Buffer, id?: string): void {
    this.sent.push({ bytes, id });
  }
  takeUnsent(): [Buffer[], (string | undefined)[]] {
    const unsent = this.sent.splice(this.taken);
    return [unsent.map((item) => item.bytes), unsent.map((item) => item.id)];
  }
  /** The decoded messages sent so far. */
  messages(): Array<Record<string, unknown>> {
    return this.sent.map((item) => decodeFrame(item.bytes) as Record<string, unknown>);
  }
}

function reply(message: Record<string, unknown>): Buffer {
  return encodeMessage({ app: "comlink_ipc_v4", timestamp: 0, ...message } as never);
}

function client(options: ParentOptions = {}) {
  const told: ConnectionEvent[] = [];
  const calls = new CallClient(
    {
      name: "w",
      tell: (event) => told.push(event),
      output: () => undefined,
      notRunningError: () => new WorkerNotRunningError("w", "stopped"),
      stateReason: () => "test",
    },
    resolveOptions(options),
    undefined,
    undefined,
  );
  const channel = new FakeChannel();
  calls.attach(channel as unknown as DealerChannel);
  return { calls, channel, told };
}

describe("CallClient (fake channel, fake clock)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("buffers calls while the worker starts and sends them, in order, once it is up", async () => {
    const { calls, channel } = client();
    calls.stateChanged("idle", "spawning");
    const a = calls.call("add", [1, 2], undefined, undefined, undefined, undefined);
    const b = calls.call("add", [3, 4], undefined, undefined, undefined, undefined);
    expect(channel.sent).toHaveLength(0);
    expect(calls.buffered).toBe(2);
    calls.stateChanged("spawning", "connected");
    const [first, second] = channel.messages();
    expect(first).toMatchObject({ type: "call", function: "add", args: [1, 2] });
    calls.receive(reply({ id: second!.id, type: "response", result: 7 }));
    calls.receive(reply({ id: first!.id, type: "response", result: 3 }));
    expect(await a).toBe(3);
    expect(await b).toBe(7);
  });

  it("on a lost connection: calls zeromq never took wait for the next one; sent ones fail with WorkerExitedError", async () => {
    const { calls, channel } = client();
    calls.stateChanged("spawning", "connected");
    const sent = calls.call("slow", [], undefined, undefined, undefined, undefined);
    channel.taken = 1;
    const unsent = calls.call("add", [1, 1], undefined, undefined, undefined, undefined);
    const lost = new WorkerExitedError("w", null, "SIGKILL");
    calls.connectionLost(channel as unknown as DealerChannel, lost);
    calls.stateChanged("connected", "restarting");
    expect(await rejectionOf(sent)).toBe(lost);
    expect(calls.buffered).toBe(1);

    const next = new FakeChannel();
    calls.attach(next as unknown as DealerChannel);
    calls.stateChanged("restarting", "connected");
    const [resent] = next.messages();
    expect(resent).toMatchObject({ function: "add" });
    calls.receive(reply({ id: resent!.id, type: "response", result: 2 }));
    expect(await unsent).toBe(2);
  });

  it("idempotent calls (per worker) that may have reached a dead worker are sent again under a new id", async () => {
    const { calls, channel } = client({ idempotent: true });
    calls.stateChanged("spawning", "connected");
    const call = calls.call("pid", [], undefined, undefined, undefined, undefined);
    channel.taken = 1;
    const [original] = channel.messages();
    calls.connectionLost(channel as unknown as DealerChannel, new WorkerExitedError("w", 1, null));
    calls.stateChanged("connected", "restarting");
    const next = new FakeChannel();
    calls.attach(next as unknown as DealerChannel);
    calls.stateChanged("restarting", "connected");
    const [again] = next.messages();
    expect(again!.id).not.toBe(original!.id);
    calls.receive(reply({ id: again!.id, type: "response", result: 99 }));
    expect(await call).toBe(99);
    expect(calls.stats.retries).toBe(1);
  });

  it("only response/error settle calls: a heartbeat-typed message with a call's id does not", async () => {
    const { calls, channel } = client();
    calls.stateChanged("spawning", "connected");
    const call = calls.call("f", [], 1000, undefined, undefined, undefined);
    const [sent] = channel.messages();
    calls.receive(reply({ id: sent!.id, type: "heartbeat" }));
    expect(calls.stats.unmatchedReplies).toBe(1);
    calls.receive(reply({ id: sent!.id, type: "response", result: "ok" }));
    expect(await call).toBe("ok");
  });

  it("an invalid reply with a readable id rejects that call at once with ProtocolError", async () => {
    const { calls, channel } = client();
    calls.stateChanged("spawning", "connected");
    const call = calls.call("f", [], 60_000, undefined, undefined, undefined);
    const [sent] = channel.messages();
    calls.receive(reply({ id: sent!.id, type: 7 }));
    const error = await rejectionOf(call);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(calls.stats.rejected["missing-type"]).toBe(1);
  });

  it("busy while calls are in flight and just after one settled; not for heartbeats alone", async () => {
    const { calls, channel } = client();
    calls.stateChanged("spawning", "connected");
    expect(calls.busy(100)).toBe(false);
    const ping = calls.ping(500);
    expect(calls.busy(100)).toBe(false);
    const call = calls.call("f", [], undefined, undefined, undefined, undefined);
    expect(calls.busy(100)).toBe(true);
    const [beat, sent] = channel.messages();
    calls.receive(reply({ id: sent!.id, type: "response", result: 1 }));
    await call;
    expect(calls.busy(100)).toBe(true);
    vi.advanceTimersByTime(150);
    calls.receive(reply({ id: beat!.id, type: "heartbeat" }));
    await ping;
    expect(calls.busy(100)).toBe(false);
  });

  it("a timeout names the namespace only when it is not the default one, and counts towards the circuit", async () => {
    const { calls, told } = client({ circuitBreaker: { consecutiveFailures: 2, minRequests: 100 } });
    calls.stateChanged("spawning", "connected");
    const plain = calls.call("f", [], 100, undefined, undefined, undefined);
    const other = calls.call("g", [], 100, "math", undefined, undefined);
    vi.advanceTimersByTime(150);
    const a = await rejectionOf(plain);
    const b = await rejectionOf(other);
    expect(a).toBeInstanceOf(CallTimeoutError);
    expect(a.message).toBe("Function 'f' timed out after 100ms");
    expect(b.message).toMatch(/namespace 'math'/);
    expect(told.map((event) => event.type)).toEqual(["CALL_FAILED", "TRIPPED"]);
  });
});

describe("siblingsToRestart (OTP strategies)", () => {
  it("one_for_one restarts no sibling; one_for_all every other; rest_for_one those after", () => {
    expect(siblingsToRestart("one_for_one", 4, 1)).toEqual([]);
    expect(siblingsToRestart("one_for_all", 4, 1)).toEqual([0, 2, 3]);
    expect(siblingsToRestart("rest_for_one", 4, 1)).toEqual([2, 3]);
    expect(siblingsToRestart("rest_for_one", 4, 3)).toEqual([]);
    expect(siblingsToRestart("one_for_all", 1, 0)).toEqual([]);
    expect(siblingsToRestart("one_for_all", 4, 7)).toEqual([]);
  });
});
