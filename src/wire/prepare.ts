import { EncodeError } from "../errors.js";

/**
 * Makes a user value safe for the v4 wire before msgpackr sees it, or throws EncodeError.
 *
 * - Integers beyond 32 bits become BigInt, so they travel as msgpack int64/uint64: msgpackr
 *   would write them as float64 and a Python peer would read `4294967296.0`.
 * - BigInt must fit int64 or uint64.
 * - Map keys must be strings: Python peers reject a whole message with any other key.
 * - Typed arrays other than Uint8Array travel as `bin` holding their bytes.
 * - An Error travels as a map `{name, message, ...its own fields}` (`cause` too), a RegExp as its
 *   `/source/flags` string, an object with `toJSON()` as what that returns.
 * - Values with no faithful wire form are refused: functions, symbols, Promises (a missing
 *   `await`), WeakMap/WeakSet/WeakRef, and class instances that have methods but no data fields.
 * - A circular structure is refused with the first path at which an object repeats.
 *
 * docs/wire.md has the whole table. The value is returned as is when nothing needs changing (the
 * common case); otherwise a copy is made of only the containers on the way to a changed value.
 * The caller's value is never mutated.
 */
export function prepareForWire(value: unknown, path: string): unknown {
  try {
    return prepare(value, path, 0);
  } catch (error) {
    if (!(error instanceof TooDeep)) throw error;
    // Rare: walk again, this time remembering ancestors, to name the cycle in a short message.
    const cycle = findCycle(value, path, new Map(), 0);
    if (cycle) throw new EncodeError(cycle.path, `circular reference: the same object as ${cycle.first} (circular structures cannot be sent)`);
    throw new EncodeError(path, `nesting deeper than ${MAX_DEPTH} levels (at ${shorten(error.path)})`);
  }
}

/** Internal: the nesting limit was crossed at `path` (prepareForWire turns it into an EncodeError). */
class TooDeep extends Error {
  readonly path: string;
  constructor(path: string) {
    super("too deep");
    this.path = path;
  }
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
      if (depth > MAX_DEPTH) throw new TooDeep(path);
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
  // As JSON.stringify and msgpackr do: an object's own say on how it is sent.
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") {
    const json: unknown = toJSON.call(value);
    if (json !== value) return prepare(json, path, depth);
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return prepareRecord(value as Record<string, unknown>, path, depth);
  return prepareInstance(value, path, depth);
}

/** Anything that is not a plain object, array, Map, Set, Date or bytes. */
function prepareInstance(value: object, path: string, depth: number): unknown {
  if (value instanceof Promise || typeof (value as { then?: unknown }).then === "function") {
    throw new EncodeError(path, "a Promise cannot be sent (a missing await?)");
  }
  for (const kind of [WeakMap, WeakSet, WeakRef] as const) {
    if (value instanceof kind) throw new EncodeError(path, `a ${kind.name} cannot be sent (its contents cannot be listed)`);
  }
  if (value instanceof Error) return prepareError(value, path, depth);
  if (value instanceof RegExp) return String(value);
  if (!hasOwnData(value) && hasMethods(value)) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    const what = typeof name === "string" && name !== "" ? `an instance of ${name}` : "an object";
    throw new EncodeError(path, `${what} has methods and no data fields: methods cannot be sent (send a plain object, or give the class a toJSON())`);
  }
  return prepareRecord(value as Record<string, unknown>, path, depth);
}

/** An Error as a value (not thrown): `{name, message, ...own enumerable fields, cause?}`; no stack. */
function prepareError(error: Error, path: string, depth: number): unknown {
  const record: Record<string, unknown> = { name: error.name, message: error.message };
  for (const key of Object.keys(error)) record[key] = (error as unknown as Record<string, unknown>)[key];
  if (Object.prototype.hasOwnProperty.call(error, "cause")) record.cause = error.cause;
  return prepareRecord(record, path, depth);
}

function hasOwnData(value: object): boolean {
  for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) return true;
  return false;
}

/** Methods (or accessors) on the prototype chain, short of its root (any realm's Object.prototype). */
function hasMethods(value: object): boolean {
  for (let proto: object | null = Object.getPrototypeOf(value) as object | null; proto !== null && Object.getPrototypeOf(proto) !== null; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === "constructor") continue;
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      if (descriptor && (typeof descriptor.value === "function" || descriptor.get)) return true;
    }
  }
  return false;
}

/**
 * The first object that repeats on its own ancestor chain, walking as `prepare` does:
 * `path` is where it repeats, `first` where it was first met.
 */
function findCycle(value: unknown, path: string, ancestors: Map<object, string>, depth: number): { path: string; first: string } | undefined {
  if (typeof value !== "object" || value === null || depth > MAX_DEPTH + 1) return undefined;
  const first = ancestors.get(value);
  if (first !== undefined) return { path, first };
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date) return undefined;
  ancestors.set(value, path);
  let found: { path: string; first: string } | undefined;
  if (Array.isArray(value) || value instanceof Set) {
    let i = 0;
    for (const item of value as Iterable<unknown>) {
      found = findCycle(item, `${path}[${i++}]`, ancestors, depth + 1);
      if (found) break;
    }
  } else if (value instanceof Map) {
    for (const [key, item] of value) {
      found = findCycle(item, `${path}.${String(key)}`, ancestors, depth + 1);
      if (found) break;
    }
  } else {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    if (value instanceof Error && Object.prototype.hasOwnProperty.call(value, "cause")) keys.push("cause");
    for (const key of keys) {
      found = findCycle(record[key], `${path}.${key}`, ancestors, depth + 1);
      if (found) break;
    }
  }
  ancestors.delete(value);
  return found;
}

function shorten(path: string): string {
  return path.length <= 80 ? path : `${path.slice(0, 80)}…`;
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
