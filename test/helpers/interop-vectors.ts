import { expect } from "vitest";

/**
 * The value checks every peer language runs (tests of the Python v4 peer, our Python library, the
 * Rust peer): one place for the vectors, so a new peer gets all of them and a fix lands once. The
 * peer's test worker offers echo, type_of, nested, count_bytes and big_ints.
 */
export interface InteropCalls {
  echo(value: unknown): Promise<unknown>;
  type_of(value: unknown): Promise<unknown>;
  nested(): Promise<unknown>;
  count_bytes(bytes: Uint8Array): Promise<unknown>;
  big_ints(): Promise<unknown>;
}

/** What a peer calls each msgpack family (Python: bool, int, …; Rust's peer: bool, int, nil, bin, array, map). */
export interface TypeNames {
  bool: string;
  int: string;
  float: string;
  str: string;
  nil: string;
  bytes: string;
  list: string;
  map: string;
}

export const PYTHON_TYPES: TypeNames = { bool: "bool", int: "int", float: "float", str: "str", nil: "NoneType", bytes: "bytes", list: "list", map: "dict" };
export const MSGPACK_TYPES: TypeNames = { bool: "bool", int: "int", float: "float", str: "str", nil: "nil", bytes: "bin", list: "array", map: "map" };

/** Each JS value arrives as the right type: integers stay integers (msgpackr alone would send 2^32+5 as a float64). */
export async function expectPrimitiveTypes(call: InteropCalls, names: TypeNames): Promise<void> {
  const cases: [unknown, string][] = [
    [true, names.bool],
    [0, names.int],
    [-1, names.int],
    [255, names.int],
    [2 ** 31, names.int],
    [2 ** 32 + 5, names.int],
    [-(2 ** 40), names.int],
    [Number.MAX_SAFE_INTEGER, names.int],
    [1.5, names.float],
    ["", names.str],
    ["plain", names.str],
    [null, names.nil],
    [undefined, names.nil],
    [Buffer.from([0, 1, 255]), names.bytes],
    [new Uint8Array([1, 2]), names.bytes],
    [[1, "a"], names.list],
    [{ a: 1 }, names.map],
    [new Map([["k", 1]]), names.map],
  ];
  for (const [value, type] of cases) expect(await call.type_of(value), String(value)).toBe(type);
  expect(await call.echo(2 ** 32 + 5)).toBe(2 ** 32 + 5);
  expect(await call.echo(-(2 ** 40))).toBe(-(2 ** 40));
  expect(await call.echo(1.5)).toBe(1.5);
  expect(await call.echo(true)).toBe(true);
}

/** Nested maps and lists, unicode (with a NUL) and bytes come back as they went. */
export async function expectNestedUnicodeBytes(call: InteropCalls): Promise<void> {
  const nested = { a: [1, { b: [true, null, 1.5] }], c: { d: { e: "f" } }, list: [[[]]] };
  expect(await call.echo(nested)).toEqual(nested);
  expect(await call.nested()).toEqual({ a: [1, { b: [true, null, 1.5] }], u: "héllo 世界 🎉" });
  const text = "héllo 世界 🎉 \u0000 zero";
  expect(await call.echo(text)).toBe(text);
  const bytes = Buffer.from([0, 1, 255, 128]);
  const back = await call.echo(bytes);
  expect(Buffer.isBuffer(back)).toBe(true);
  expect(Buffer.compare(back as Buffer, bytes)).toBe(0);
  expect(await call.count_bytes(Buffer.alloc(1000))).toBe(1000);
}

/** int64/uint64 limits as BigInt, both ways; 2^64 does not fit and is refused before sending. */
export async function expectInt64Limits(call: InteropCalls): Promise<void> {
  const limits = [2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 53n + 1n];
  for (const value of limits) expect(await call.echo(value)).toBe(value);
  expect(await call.big_ints()).toEqual(limits);
  await expect(call.echo(2n ** 64n)).rejects.toMatchObject({ name: "EncodeError" });
}

/** The cases the peers' conformance suites (test/peer/mf_peer.py, test/rust-peer) run against a v4 child, in order. */
export const CONFORMANCE_CASES = [
  "heartbeat",
  "add_ints",
  "add_floats",
  "primitives",
  "none",
  "nested",
  "unicode",
  "bytes",
  "int64_limits",
  "remote_error",
  "missing_function",
  "private_function",
  "list_functions",
  "namespace_mismatch",
  "pipelined_200",
  "payload_1mib",
  "garbage",
  "concurrency",
  "shutdown",
] as const;
