import { EncodeError } from "../errors.js";

/**
 * Makes a user value safe for the v4 wire before msgpackr sees it, or throws EncodeError.
 *
 * - Integers beyond 32 bits become BigInt, so they travel as msgpack int64/uint64: msgpackr
 *   would write them as float64 and a Python peer would read `4294967296.0`.
 * - BigInt must fit int64 or uint64.
 * - Map keys must be strings: Python peers reject a whole message with any other key.
 * - Typed arrays other than Uint8Array travel as `bin` holding their bytes.
 * - Functions and symbols cannot be sent.
 *
 * The value is returned as is when nothing needs changing (the common case); otherwise a copy
 * is made of only the containers on the way to a changed value. The caller's value is never mutated.
 */
export function prepareForWire(value: unknown, path: string): unknown {
  return prepare(value, path, 0);
}

const MAX_DEPTH = 512;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

function prepare(value: unknown, path: string, depth: number): unknown {
  switch (typeof value) {
    case "number":
      // Fast exits first: int32/uint32 and non-integers are written correctly by msgpackr.
      if ((value | 0) === value || value >>> 0 === value || !Number.isSafeInteger(value)) return value;
      return BigInt(value);
    case "bigint":
      if (value < INT64_MIN || value > UINT64_MAX) {
        throw new EncodeError(path, `the integer ${value} does not fit in 64 bits (send it as a string)`);
      }
      return value;
    case "function":
      throw new EncodeError(path, "functions cannot be sent");
    case "symbol":
      throw new EncodeError(path, "symbols cannot be sent");
    case "object":
      if (value === null) return value;
      if (depth > MAX_DEPTH) throw new EncodeError(path, `nesting deeper than ${MAX_DEPTH} levels (circular?)`);
      return prepareObject(value, path, depth + 1);
    default:
      return value;
  }
}

function prepareObject(value: object, path: string, depth: number): unknown {
  if (Array.isArray(value)) return prepareArray(value, path, depth);
  if (ArrayBuffer.isView(value)) {
    if (value instanceof Uint8Array) return value;
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (value instanceof Map) return prepareMap(value, path, depth);
  if (value instanceof Set) return prepareArray([...value], path, depth);
  if (value instanceof Date) return value;
  return prepareRecord(value as Record<string, unknown>, path, depth);
}

function prepareArray(array: readonly unknown[], path: string, depth: number): unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < array.length; i++) {
    const item = array[i];
    const prepared = prepare(item, `${path}[${i}]`, depth);
    if (prepared !== item) {
      copy ??= array.slice();
      copy[i] = prepared;
    }
  }
  return copy ?? (array as unknown[]);
}

function prepareMap(map: Map<unknown, unknown>, path: string, depth: number): Map<string, unknown> {
  let copy: Map<string, unknown> | undefined;
  for (const [key, item] of map) {
    if (typeof key !== "string") {
      throw new EncodeError(path, `map keys must be strings, found ${describe(key)} (Python peers reject non-string keys)`);
    }
    const prepared = prepare(item, `${path}.${key}`, depth);
    if (prepared !== item) copy ??= new Map(map as Map<string, unknown>);
    if (copy) copy.set(key, prepared);
  }
  return copy ?? (map as Map<string, unknown>);
}

function prepareRecord(record: Record<string, unknown>, path: string, depth: number): unknown {
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) continue;
    const item = record[key];
    // msgpackr skips nothing: an own function-valued field would be written as nil.
    const prepared = prepare(item, `${path}.${key}`, depth);
    if (prepared !== item) {
      copy ??= { ...record };
      copy[key] = prepared;
    }
  }
  return copy ?? record;
}

function describe(key: unknown): string {
  if (typeof key === "object") return key === null ? "null" : "an object";
  return `${typeof key} ${String(key)}`;
}
