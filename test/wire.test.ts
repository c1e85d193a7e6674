import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { EncodeError } from "../src/errors.js";
import {
  APP_ID,
  RejectedFrame,
  createCall,
  createHeartbeat,
  createHeartbeatReply,
  createResponse,
  decodeFrame,
  encodeMessage,
  nextMessageId,
  parseFrame,
  parseRemoteError,
  prepareForWire,
  type HeartbeatMessage,
} from "../src/wire/index.js";

const plain = new Packr({ useRecords: false });
const frame = (value: unknown): Buffer => plain.pack(value);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

describe("prepareForWire", () => {
  it("returns the same value when nothing needs changing", () => {
    const args = [1, "two", { three: [3, null, true] }, Buffer.from("x")];
    expect(prepareForWire(args, "args")).toBe(args);
  });

  it("turns integers beyond 32 bits into BigInt so they travel as int64, without mutating the input", () => {
    const args = [2 ** 32 + 5, { big: -(2 ** 40) }, 1.5];
    const prepared = prepareForWire(args, "args") as unknown[];
    expect(prepared).toEqual([BigInt(2 ** 32 + 5), { big: -(2n ** 40n) }, 1.5]);
    expect(args[0]).toBe(2 ** 32 + 5);
    // int64 (d3) rather than float64 (cb): Python reads an int.
    expect(hex(encodeMessage(createResponse("i", prepared[0])))).toMatch(/a6726573756c74d30000000100000005$/);
  });

  it("keeps int32/uint32 and floats as they are", () => {
    for (const value of [0, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 0.1, NaN, Infinity, 2 ** 53]) {
      expect(prepareForWire(value, "x")).toBe(value);
    }
  });

  it("refuses non-string Map keys with a typed error naming the path", () => {
    const error = (() => {
      try {
        prepareForWire([{ inner: new Map<unknown, unknown>([[1, "a"]]) }], "args");
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(error).toBeInstanceOf(EncodeError);
    expect((error as EncodeError).path).toBe("args[0].inner");
    expect((error as EncodeError).message).toMatch(/map keys must be strings/);
  });

  it("accepts Maps with string keys", () => {
    const map = new Map([["a", 1]]);
    expect(prepareForWire(map, "x")).toBe(map);
  });

  it("refuses functions, symbols and BigInt beyond 64 bits", () => {
    expect(() => prepareForWire([() => 1], "args")).toThrow(EncodeError);
    expect(() => prepareForWire({ s: Symbol("x") }, "args")).toThrow(EncodeError);
    expect(() => prepareForWire(2n ** 64n, "args")).toThrow(/does not fit in 64 bits/);
    expect(() => prepareForWire(-(2n ** 63n) - 1n, "args")).toThrow(EncodeError);
    expect(prepareForWire(2n ** 64n - 1n, "x")).toBe(2n ** 64n - 1n);
  });

  it("refuses circular structures instead of overflowing the stack", () => {
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => prepareForWire(loop, "args")).toThrow(/nesting deeper/);
  });

  it("sends typed arrays as bin holding their bytes", () => {
    const floats = new Float32Array([1]);
    const prepared = prepareForWire(floats, "x") as Buffer;
    expect(Buffer.isBuffer(prepared)).toBe(true);
    expect(hex(prepared)).toBe("0000803f");
  });
});

describe("codec", () => {
  it("encodes plain msgpack maps that a strict reader accepts", () => {
    const bytes = encodeMessage(createCall("id-1", "add", [1, 2], "default"));
    const decoded = decodeFrame(bytes) as Record<string, unknown>;
    expect(decoded).toMatchObject({ app: APP_ID, id: "id-1", type: "call", function: "add", args: [1, 2], namespace: "default" });
    expect(typeof decoded.timestamp).toBe("number");
    // fixmap (0x87: seven keys) — never map16 or a msgpackr record extension.
    expect(bytes[0]).toBe(0x87);
  });

  it("keeps a small call within the 128 bytes zeromq.js copies instead of sending zero-copy", () => {
    const bytes = encodeMessage(createCall(nextMessageId(), "add", [1, 2]));
    expect(bytes.length).toBeLessThanOrEqual(128);
    // Every field is still there, namespace included.
    expect(Object.keys(decodeFrame(bytes) as object).sort()).toEqual(["app", "args", "function", "id", "namespace", "timestamp", "type"]);
  });

  it("writes undefined as nil and a missing result as null", () => {
    expect(decodeFrame(encodeMessage(createResponse("i", undefined)))).toMatchObject({ result: null });
    expect(decodeFrame(encodeMessage(createResponse("i", [undefined])))).toMatchObject({ result: [null] });
  });

  it("reads int64 beyond 2^53 as BigInt and smaller ones as numbers", () => {
    expect(decodeFrame(Buffer.from("d37fffffffffffffff", "hex"))).toBe(2n ** 63n - 1n);
    expect(decodeFrame(Buffer.from("cfffffffffffffffff", "hex"))).toBe(2n ** 64n - 1n);
    expect(decodeFrame(Buffer.from("cf0000010000000000", "hex"))).toBe(2 ** 40);
  });

  it("reads bin as a Buffer", () => {
    const value = decodeFrame(Buffer.from("c403010203", "hex"));
    expect(Buffer.isBuffer(value)).toBe(true);
  });
});

describe("parseFrame", () => {
  const base = { app: APP_ID, id: "abc", timestamp: 1 };

  it("never throws on garbage and says why", () => {
    const cases: [Uint8Array, string][] = [
      [Buffer.from([0xc1, 0xc1]), "undecodable"],
      [Buffer.alloc(0), "undecodable"],
      [Buffer.from("81a161", "hex"), "undecodable"],
      [frame([1, 2, 3]), "not-a-map"],
      [frame("text"), "not-a-map"],
      [frame({ ...base, app: "other", type: "call" }), "wrong-app"],
      [frame({ app: APP_ID, id: "x" }), "missing-type"],
      [frame({ app: APP_ID, type: "call", function: "f", args: [] }), "missing-id"],
      [frame({ ...base, type: "call", args: [] }), "missing-function"],
      [frame({ ...base, type: "call", function: "f", args: "nope" }), "bad-args"],
      [frame({ ...base, type: "call", function: "f", args: [], namespace: ["default"] }), "bad-namespace"],
      [frame({ ...base, type: "gossip" }), "unknown-type"],
    ];
    for (const [bytes, reason] of cases) {
      const parsed = parseFrame(bytes);
      expect(parsed, reason).toBeInstanceOf(RejectedFrame);
      expect((parsed as RejectedFrame).reason).toBe(reason);
    }
  });

  it("keeps the id of an invalid call so the sender can be answered", () => {
    const parsed = parseFrame(frame({ ...base, type: "call" })) as RejectedFrame;
    expect(parsed.id).toBe("abc");
    expect(parsed.type).toBe("call");
  });

  it("accepts the variants v4 peers send", () => {
    // Python omits `result` for None; JS v4 sends clientName; namespace may be missing.
    expect(parseFrame(frame({ ...base, type: "response" }))).toMatchObject({ result: null });
    expect(parseFrame(frame({ ...base, type: "call", function: "f", clientName: "me" }))).toMatchObject({
      args: [],
      namespace: "default",
      client_name: "me",
    });
    expect(parseFrame(frame({ ...base, type: "error" }))).toMatchObject({ error: "Error: Unknown error" });
    // A non-string error or output is kept readable.
    expect(parseFrame(frame({ ...base, type: "error", error: { code: 7, why: ["x"] } }))).toMatchObject({ error: '{"code":7,"why":["x"]}' });
    expect(parseFrame(frame({ ...base, type: "stdout", output: 42 }))).toMatchObject({ output: "42" });
    expect(parseFrame(frame({ ...base, type: "stderr", output: Buffer.from("héllo") }))).toMatchObject({ output: "héllo" });
    // Output messages without an id (Python) are fine.
    expect(parseFrame(frame({ app: APP_ID, type: "stdout", timestamp: 1, output: "hi" }))).toMatchObject({ output: "hi" });
    // Unknown fields are ignored, not rejected.
    expect(parseFrame(frame({ ...base, type: "response", result: 1, extra: { x: 1 } }))).toMatchObject({ result: 1 });
  });

  it("does not let a __proto__ key reach an object's prototype", () => {
    const parsed = parseFrame(Buffer.concat([Buffer.from("85", "hex"), plain.pack("app").subarray(0), plain.pack(APP_ID), plain.pack("id"), plain.pack("x"), plain.pack("type"), plain.pack("response"), plain.pack("timestamp"), plain.pack(1), plain.pack("__proto__"), plain.pack({ polluted: true })]));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
  });
});

describe("heartbeats", () => {
  it("replies with the same id, the request metadata and hb_response", () => {
    const request = createHeartbeat("hb-1");
    const reply = createHeartbeatReply(request as HeartbeatMessage);
    expect(reply.id).toBe("hb-1");
    expect(reply.metadata).toEqual({ hb_timestamp: request.metadata!.hb_timestamp, hb_response: true });
  });
});

describe("message ids", () => {
  it("are unique UUIDv4s in 32-hex-digit form", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 10_000; i++) ids.add(nextMessageId());
    expect(ids.size).toBe(10_000);
    for (const id of [...ids].slice(0, 5)) expect(id).toMatch(/^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  });
});

describe("parseRemoteError", () => {
  it("splits a Python error with traceback", () => {
    const parsed = parseRemoteError("ValueError: bad value\nTraceback (most recent call last):\n  File ...");
    expect(parsed).toEqual({ type: "ValueError", message: "bad value", stack: "Traceback (most recent call last):\n  File ..." });
  });

  it("reads a JS v4 error that has only a message", () => {
    expect(parseRemoteError("something broke")).toEqual({ type: "Error", message: "something broke", stack: undefined });
  });

  it("prefers an explicit stack field", () => {
    expect(parseRemoteError("TypeError: x", "TypeError: x\n    at f")).toEqual({ type: "TypeError", message: "x", stack: "TypeError: x\n    at f" });
  });
});
