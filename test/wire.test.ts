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

function thrownBy(action: () => unknown): EncodeError {
  try {
    action();
  } catch (error) {
    return error as EncodeError;
  }
  throw new Error("expected an EncodeError, nothing was thrown");
}

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

  it("refuses circular structures instead of overflowing the stack, naming the first repeated path in a short message", () => {
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    const error = thrownBy(() => prepareForWire(loop, "args"));
    expect(error).toBeInstanceOf(EncodeError);
    expect(error.path).toBe("args.self");
    expect(error.message).toBe("Cannot encode args.self: circular reference: the same object as args (circular structures cannot be sent)");

    const node: { name: string; children: unknown[]; parent?: unknown } = { name: "root", children: [] };
    const child = { name: "leaf", parent: node, list: [1, 2] };
    node.children.push({ ok: true }, child);
    const nested = thrownBy(() => prepareForWire([{ tree: node }], "args"));
    expect(nested.path).toBe("args[0].tree.children[1].parent");
    expect(nested.message).toContain("the same object as args[0].tree");
    expect(nested.message.length).toBeLessThan(200);

    // Through a Map and a Set too.
    const map = new Map<string, unknown>();
    map.set("me", [map]);
    expect(thrownBy(() => prepareForWire(map, "x")).path).toBe("x.me[0]");
    const set = new Set<unknown>();
    set.add({ back: set });
    expect(thrownBy(() => prepareForWire(set, "x")).path).toBe("x[0].back");
  });

  it("sends a shared (not circular) object as many times as it appears", () => {
    const shared = { n: 1 };
    expect(prepareForWire([shared, shared, { again: shared }], "args")).toEqual([{ n: 1 }, { n: 1 }, { again: { n: 1 } }]);
  });

  it("refuses nesting deeper than 512 levels with a short message", () => {
    let deep: Record<string, unknown> = {};
    const top = deep;
    for (let i = 0; i < 600; i++) deep = (deep.a = {}) as Record<string, unknown>;
    const error = thrownBy(() => prepareForWire(top, "args"));
    expect(error.message).toMatch(/^Cannot encode args: nesting deeper than 512 levels \(at args\.a\.a/);
    expect(error.message.length).toBeLessThan(200);
  });

  it("refuses values with no faithful wire form, naming the path", () => {
    class Counter {
      increment(): void {}
    }
    class WithAccessor {
      get now(): number {
        return 1;
      }
    }
    const cases: [unknown, RegExp][] = [
      [Promise.resolve(1), /a Promise cannot be sent \(a missing await\?\)/],
      [{ then: undefined, ok: 1, p: { then: (): void => {} } }, /functions cannot be sent/],
      [new WeakMap(), /a WeakMap cannot be sent/],
      [new WeakSet(), /a WeakSet cannot be sent/],
      [new WeakRef({}), /a WeakRef cannot be sent/],
      [new Counter(), /an instance of Counter has methods and no data fields/],
      [new WithAccessor(), /an instance of WithAccessor has methods and no data fields/],
      [() => 1, /functions cannot be sent/],
      [Symbol("s"), /symbols cannot be sent/],
    ];
    for (const [value, message] of cases) {
      const error = thrownBy(() => prepareForWire([{ value }], "args"));
      expect(error, String(message)).toBeInstanceOf(EncodeError);
      expect(error.message).toMatch(message);
      expect(error.path.startsWith("args[0].value")).toBe(true);
    }
    // A thenable class instance is a Promise as far as a caller is concerned.
    class Lazy {
      data = 1;
      then(): void {}
    }
    expect(thrownBy(() => prepareForWire(new Lazy(), "result")).message).toMatch(/Promise/);
  });

  it("sends class instances with data as their own fields, and empty classes as {}", () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
      norm(): number {
        return Math.hypot(this.x, this.y);
      }
    }
    const point = new Point(3, 4);
    expect(prepareForWire(point, "x")).toBe(point);
    expect(decodeFrame(encodeMessage(createResponse("i", prepareForWire(point, "result"))))).toMatchObject({ result: { x: 3, y: 4 } });
    class Empty {}
    expect(decodeFrame(encodeMessage(createResponse("i", prepareForWire(new Empty(), "result"))))).toMatchObject({ result: {} });
  });

  it("maps Error, RegExp and objects with toJSON() to one documented form each", () => {
    const roundTrip = (value: unknown): unknown =>
      (decodeFrame(encodeMessage(createResponse("i", prepareForWire(value, "result")))) as { result: unknown }).result;
    const error = Object.assign(new TypeError("bad input", { cause: new Error("root") }), { code: "E_BAD" });
    expect(roundTrip(error)).toEqual({ name: "TypeError", message: "bad input", code: "E_BAD", cause: { name: "Error", message: "root" } });
    expect(roundTrip(new EncodeError("args", "x"))).toMatchObject({ name: "EncodeError", message: "Cannot encode args: x", code: "ERR_ENCODE", path: "args" });
    expect(roundTrip(/ab+c/gi)).toBe("/ab+c/gi");
    expect(roundTrip(new URL("https://example.com/a?b=1"))).toBe("https://example.com/a?b=1");
    expect(roundTrip({ when: { toJSON: () => ({ big: 2 ** 40 }) } })).toEqual({ when: { big: 2 ** 40 } });
  });

  it("keeps the documented mappings of Date, Map, Set, typed arrays and BigInt", () => {
    const roundTrip = (value: unknown): unknown =>
      (decodeFrame(encodeMessage(createResponse("i", prepareForWire(value, "result")))) as { result: unknown }).result;
    expect(roundTrip(new Date(1_700_000_000_123))).toEqual(new Date(1_700_000_000_123));
    expect(roundTrip(new Map([["a", 1]]))).toEqual({ a: 1 });
    expect(roundTrip(new Set([1, "b"]))).toEqual([1, "b"]);
    expect(roundTrip(new Uint16Array([1, 256]))).toEqual(Buffer.from([1, 0, 0, 1]));
    expect(roundTrip(12n)).toBe(12);
    expect(roundTrip(2n ** 60n)).toBe(2n ** 60n);
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

  it("keeps a call's stream only with a credit that is an integer ≥ 0; a credit message needs one too", () => {
    const call = { ...base, type: "call", function: "f", args: [] };
    expect(parseFrame(frame({ ...call, stream: { credit: 16 } }))).toMatchObject({ stream: { credit: 16 } });
    expect(parseFrame(frame({ ...call, stream: { credit: 0 } }))).toMatchObject({ stream: { credit: 0 } });
    for (const credit of [-1, 1.5, "16", null]) {
      expect(parseFrame(frame({ ...call, stream: { credit } })), String(credit)).not.toHaveProperty("stream");
    }
    expect(parseFrame(frame({ ...base, type: "credit", n: 8 }))).toMatchObject({ n: 8 });
    for (const n of [-1, 2.5, "8"]) expect((parseFrame(frame({ ...base, type: "credit", n })) as RejectedFrame).reason).toBe("bad-credit");
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
