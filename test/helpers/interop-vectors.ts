import { expect } from "vitest";
import { CallTimeoutError, EncodeError, RemoteCallError, type ParentWorker } from "../../src/index.js";
import { waitFor } from "./processes.js";

/**
 * The checks every peer language runs (tests of the Python v4 peer, our Python library, the Rust
 * peer): one place for them, so a new peer gets all of them and a fix lands once. The peer's test
 * worker offers echo, type_of, nested, count_bytes, big_ints, add and spray_garbage. The value
 * checks take a call proxy (the Python library's test loads dist/); the others a ParentWorker from src/.
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

/** A missing function and a private one (`_name`) are remote errors, not timeouts. */
export async function expectMissingAndPrivateRefused(worker: ParentWorker): Promise<void> {
  const missing = await worker.callFunction("no_such_fn").catch((e: unknown) => e);
  expect(missing).toBeInstanceOf(RemoteCallError);
  expect((missing as RemoteCallError).message).toMatch(/no_such_fn.*not found/);
  const hidden = await worker.callFunction("_private").catch((e: unknown) => e);
  expect(hidden).toBeInstanceOf(RemoteCallError);
  expect((hidden as RemoteCallError).message).toMatch(/private/);
}

/** A Map with non-string keys is refused before sending; the worker is unaffected. */
export async function expectNonStringKeysRefused(worker: ParentWorker): Promise<void> {
  const sent = worker.stats.callsSent;
  await expect(worker.handle().call.echo(new Map([[1, "x"]]))).rejects.toBeInstanceOf(EncodeError);
  expect(worker.stats.callsSent).toBe(sent);
  expect(await worker.handle().call.add(2, 2)).toBe(4);
}

/** A call for another namespace times out with an error naming it; the worker keeps serving. */
export async function expectNamespaceMismatchNamed(worker: ParentWorker): Promise<void> {
  const error = await worker.handle().call.withOptions({ namespace: "other", timeout: 300 }).add(1, 1).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CallTimeoutError);
  expect((error as Error).message).toMatch(/namespace 'other'/);
  expect(await worker.handle().call.add(1, 1)).toBe(2);
}

/** 250 calls in flight, each result back to its own caller. */
export async function expectPipelined(worker: ParentWorker): Promise<void> {
  const call = worker.handle().call;
  const results = await Promise.all(Array.from({ length: 250 }, (_, i) => call.add(i, 1000)));
  expect(results).toEqual(Array.from({ length: 250 }, (_, i) => i + 1000));
}

/** A 1 MiB Buffer goes and comes back byte for byte. */
export async function expectMiBRoundTrip(worker: ParentWorker): Promise<void> {
  const payload = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const back = (await worker.handle().call.echo(payload)) as Buffer;
  expect(back.length).toBe(payload.length);
  expect(Buffer.compare(back, payload)).toBe(0);
}

/**
 * The peer's `spray_garbage` sends undecodable, non-map, foreign-app, id-less, unknown-type and
 * type-less frames, two replies to unknown ids, a duplicate reply and a stdout line: each is
 * counted where it belongs, the output is printed, and the worker keeps serving.
 */
export async function expectSurvivesGarbage(worker: ParentWorker, outputLines: readonly string[]): Promise<void> {
  const before = { ...worker.stats.rejected };
  const unmatched = worker.stats.unmatchedReplies;
  expect(await worker.handle().call.spray_garbage()).toBe("sprayed");
  await waitFor(() => outputLines.includes("stdout: forwarded line"), 5000, "the forwarded stdout line");
  const rejected = worker.stats.rejected;
  const grew = (reason: keyof typeof rejected): number => (rejected[reason] ?? 0) - (before[reason] ?? 0);
  expect(grew("undecodable")).toBe(2);
  expect(grew("not-a-map")).toBe(2);
  expect(grew("wrong-app")).toBe(1);
  expect(grew("missing-id")).toBe(1);
  expect(grew("unknown-type")).toBe(1);
  expect(grew("missing-type")).toBe(1);
  // two unknown ids, then the duplicate of the real reply (it may land just after the call resolved)
  await waitFor(() => worker.stats.unmatchedReplies - unmatched === 3, 5000, "the duplicate reply");
  expect(await worker.handle().call.add(40, 2)).toBe(42);
}
