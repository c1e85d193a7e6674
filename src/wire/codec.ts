import { isAscii } from "node:buffer";
import { Packr, Unpackr } from "msgpackr";
import { EncodeError } from "../errors.js";
import type { WireMessage } from "./messages.js";

/**
 * The v4 codec: plain msgpack maps (never msgpackr records), `undefined` as nil, int64 beyond
 * ±2^53 as BigInt, `bin` as Buffer. Values must already have passed `prepareForWire`.
 *
 * Messages made of plain objects, arrays, ASCII strings, numbers, booleans and nil — every
 * call, reply and heartbeat of small values — take a hand-written path that reads and writes
 * the same msgpack as msgpackr (maps are written with the smallest header, which msgpackr
 * reads as well). Anything else (binary, BigInt, non-ASCII text, extensions) goes to msgpackr.
 */
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, moreTypes: false });
// "auto" (numbers while safe, BigInt beyond ±2^53) is supported at run time but missing from
// msgpackr's type declarations.
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "auto" as unknown as "bigint",
});

export function encodeMessage(message: WireMessage): Buffer {
  const bytes = encodeSimple(message);
  if (bytes !== undefined) return bytes;
  try {
    return packr.pack(message);
  } catch (error) {
    throw new EncodeError("message", error instanceof Error ? error.message : String(error));
  }
}

/** Decodes one frame. Throws on bytes that are not exactly one msgpack value. */
export function decodeFrame(bytes: Uint8Array): unknown {
  const value = decodeSimple(bytes);
  return value === NOT_SIMPLE ? unpackr.unpack(bytes) : value;
}

// ---- encoding ---------------------------------------------------------------------------------

/** Thrown (never escapes this module) when a value needs msgpackr. */
const NOT_SIMPLE: unique symbol = Symbol("not simple");
const MAX_DEPTH = 64;
/** Longer strings go to msgpackr, which writes them natively. */
const MAX_SIMPLE_STRING = 1024;
const CHUNK_SIZE = 16 * 1024;

/**
 * Messages are written one after the other into a shared chunk and handed out as views of it
 * (as msgpackr does): a chunk is never written twice, so a view stays valid while zeromq holds it.
 */
let chunk = Buffer.allocUnsafeSlow(CHUNK_SIZE);
let start = 0;
let pos = 0;

function encodeSimple(message: WireMessage): Buffer | undefined {
  start = pos;
  try {
    writeValue(message, 0);
  } catch {
    // NOT_SIMPLE, or a getter that threw: msgpackr takes the message (and reports the error).
    pos = start;
    return undefined;
  }
  const bytes = chunk.subarray(start, pos);
  if (pos > chunk.length - 64) {
    chunk = Buffer.allocUnsafeSlow(CHUNK_SIZE);
    pos = 0;
  }
  start = pos;
  return bytes;
}

/** Makes room for `bytes` more bytes, moving the message written so far to a new chunk if needed. */
function reserve(bytes: number): void {
  if (pos + bytes <= chunk.length) return;
  const written = pos - start;
  const next = Buffer.allocUnsafeSlow(Math.max(CHUNK_SIZE, (written + bytes) * 2));
  chunk.copy(next, 0, start, pos);
  chunk = next;
  start = 0;
  pos = written;
}

function writeValue(value: unknown, depth: number): void {
  switch (typeof value) {
    case "string":
      writeString(value);
      return;
    case "number":
      writeNumber(value);
      return;
    case "boolean":
      reserve(1);
      chunk[pos++] = value ? 0xc3 : 0xc2;
      return;
    case "undefined":
      reserve(1);
      chunk[pos++] = 0xc0;
      return;
    case "object":
      if (value === null) {
        reserve(1);
        chunk[pos++] = 0xc0;
        return;
      }
      if (depth >= MAX_DEPTH) throw NOT_SIMPLE;
      if (value.constructor === Object) writeObject(value as Record<string, unknown>, depth + 1);
      else if (value.constructor === Array) writeArray(value as unknown[], depth + 1);
      else throw NOT_SIMPLE;
      return;
    default:
      throw NOT_SIMPLE; // bigint, function, symbol
  }
}

function writeObject(object: Record<string, unknown>, depth: number): void {
  // One byte for a fixmap header; moved up to make room for a map16/map32 one if needed. Kept
  // as an offset from `start`: writing the fields may move the message to a new chunk.
  reserve(1);
  const offset = pos++ - start;
  let size = 0;
  for (const key in object) {
    if (!Object.prototype.hasOwnProperty.call(object, key)) continue;
    writeString(key);
    writeValue(object[key], depth);
    size++;
  }
  if (size < 0x10) {
    chunk[start + offset] = 0x80 | size;
    return;
  }
  const extra = size < 0x10000 ? 2 : 4;
  reserve(extra);
  const header = start + offset;
  chunk.copyWithin(header + 1 + extra, header + 1, pos);
  pos += extra;
  if (extra === 2) {
    chunk[header] = 0xde;
    chunk.writeUInt16BE(size, header + 1);
  } else {
    chunk[header] = 0xdf;
    chunk.writeUInt32BE(size, header + 1);
  }
}

function writeArray(array: unknown[], depth: number): void {
  const length = array.length;
  writeHeader(length, 0x90, 0xdc);
  for (let i = 0; i < length; i++) writeValue(array[i], depth);
}

/** A map or array header: `fix | size` below 16, else the 16- or 32-bit form after `code16`. */
function writeHeader(size: number, fix: number, code16: number): void {
  reserve(5);
  if (size < 0x10) {
    chunk[pos++] = fix | size;
  } else if (size < 0x10000) {
    chunk[pos++] = code16;
    chunk[pos++] = size >> 8;
    chunk[pos++] = size & 0xff;
  } else {
    chunk[pos++] = code16 + 1;
    chunk.writeUInt32BE(size, pos);
    pos += 4;
  }
}

function writeString(value: string): void {
  const length = value.length;
  if (length > MAX_SIMPLE_STRING) throw NOT_SIMPLE;
  reserve(length + 3);
  let at = pos + (length < 0x20 ? 1 : length < 0x100 ? 2 : 3);
  for (let i = 0; i < length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x80) throw NOT_SIMPLE;
    chunk[at++] = code;
  }
  if (length < 0x20) {
    chunk[pos] = 0xa0 | length;
  } else if (length < 0x100) {
    chunk[pos] = 0xd9;
    chunk[pos + 1] = length;
  } else {
    chunk[pos] = 0xda;
    chunk[pos + 1] = length >> 8;
    chunk[pos + 2] = length & 0xff;
  }
  pos = at;
}

/** The encodings msgpackr chooses (with `useRecords: false` and no float32). */
function writeNumber(value: number): void {
  reserve(9);
  if (value >>> 0 === value) {
    if (value < 0x80) {
      chunk[pos++] = value;
    } else if (value < 0x100) {
      chunk[pos++] = 0xcc;
      chunk[pos++] = value;
    } else if (value < 0x10000) {
      chunk[pos++] = 0xcd;
      chunk[pos++] = value >> 8;
      chunk[pos++] = value & 0xff;
    } else {
      chunk[pos++] = 0xce;
      chunk.writeUInt32BE(value, pos);
      pos += 4;
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) {
      chunk[pos++] = 0x100 + value;
    } else if (value >= -0x80) {
      chunk[pos++] = 0xd0;
      chunk[pos++] = value + 0x100;
    } else if (value >= -0x8000) {
      chunk[pos++] = 0xd1;
      chunk.writeInt16BE(value, pos);
      pos += 2;
    } else {
      chunk[pos++] = 0xd2;
      chunk.writeInt32BE(value, pos);
      pos += 4;
    }
  } else {
    chunk[pos++] = 0xcb;
    chunk.writeDoubleBE(value, pos);
    pos += 8;
  }
}

// ---- decoding ---------------------------------------------------------------------------------

/** Node's Buffer has `latin1Slice` (what `toString("latin1")` calls, as msgpackr uses it) without a type for it. */
type Latin1Buffer = Buffer & { latin1Slice?(start: number, end: number): string };

let src: Latin1Buffer = chunk;
let at = 0;
let end = 0;

/** The value, or NOT_SIMPLE when msgpackr must decode these bytes (including every malformed input). */
function decodeSimple(bytes: Uint8Array): unknown {
  if (!Buffer.isBuffer(bytes)) return NOT_SIMPLE;
  src = bytes;
  at = 0;
  end = bytes.length;
  try {
    const value = readValue(0);
    return at === end ? value : NOT_SIMPLE;
  } catch (error) {
    if (error === NOT_SIMPLE || error instanceof RangeError) return NOT_SIMPLE;
    throw error;
  }
}

/** Fails (to msgpackr) unless `bytes` more bytes are there. */
function need(bytes: number): void {
  if (at + bytes > end) throw NOT_SIMPLE;
}

function readValue(depth: number): unknown {
  need(1);
  const token = src[at++]!;
  if (token < 0x80) return token;
  if (token < 0x90) return readMap(token - 0x80, depth);
  if (token < 0xa0) return readArray(token - 0x90, depth);
  if (token < 0xc0) return readString(token - 0xa0);
  if (token >= 0xe0) return token - 0x100;
  let value: number;
  switch (token) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      need(1);
      return readBin(src[at++]!);
    case 0xc5:
      need(2);
      value = src.readUInt16BE(at);
      at += 2;
      return readBin(value);
    case 0xc6:
      need(4);
      value = src.readUInt32BE(at);
      at += 4;
      return readBin(value);
    case 0xca:
      need(4);
      value = src.readFloatBE(at);
      at += 4;
      return value;
    case 0xcb:
      need(8);
      value = src.readDoubleBE(at);
      at += 8;
      return value;
    case 0xcc:
      need(1);
      return src[at++]!;
    case 0xcd:
      need(2);
      value = src.readUInt16BE(at);
      at += 2;
      return value;
    case 0xce:
      need(4);
      value = src.readUInt32BE(at);
      at += 4;
      return value;
    case 0xd0:
      need(1);
      return src.readInt8(at++);
    case 0xd1:
      need(2);
      value = src.readInt16BE(at);
      at += 2;
      return value;
    case 0xd2:
      need(4);
      value = src.readInt32BE(at);
      at += 4;
      return value;
    case 0xd9:
      need(1);
      return readString(src[at++]!);
    case 0xda:
      need(2);
      value = src.readUInt16BE(at);
      at += 2;
      return readString(value);
    case 0xdb:
      need(4);
      value = src.readUInt32BE(at);
      at += 4;
      return readString(value);
    case 0xdc:
      need(2);
      value = src.readUInt16BE(at);
      at += 2;
      return readArray(value, depth);
    case 0xdd:
      need(4);
      value = src.readUInt32BE(at);
      at += 4;
      return readArray(value, depth);
    case 0xde:
      need(2);
      value = src.readUInt16BE(at);
      at += 2;
      return readMap(value, depth);
    case 0xdf:
      need(4);
      value = src.readUInt32BE(at);
      at += 4;
      return readMap(value, depth);
    default:
      throw NOT_SIMPLE; // 64-bit integers, extensions, 0xc1
  }
}

function readMap(size: number, depth: number): Record<string, unknown> {
  if (depth >= MAX_DEPTH || size > (end - at) / 2) throw NOT_SIMPLE;
  if (depth === 0 && size <= MAX_SHAPE_KEYS) return readMessage(size);
  const object: Record<string, unknown> = {};
  for (let i = 0; i < size; i++) {
    const key = readKey();
    object[key] = readValue(depth + 1);
  }
  return object;
}

/** A map key: a string (other keys follow msgpackr's rules), `__proto__` renamed as msgpackr does. */
function readKey(): string {
  need(1);
  const token = src[at++]!;
  let key: string;
  if (token >= 0xa0 && token < 0xc0) key = readString(token - 0xa0);
  else if (token === 0xd9) {
    need(1);
    key = readString(src[at++]!);
  } else throw NOT_SIMPLE;
  return key === "__proto__" ? "__proto_" : key;
}

/**
 * The message map itself. Messages of one kind repeat the same keys in the same order, so once
 * a key sequence has been seen a few times it gets a constructor (an object literal with those
 * keys): one allocation of the final shape instead of a property added at a time, and every
 * message of that kind shares one hidden class downstream.
 */
const MAX_SHAPE_KEYS = 16;
const MAX_SHAPES = 8;
const SHAPE_AFTER = 4;
interface Shape {
  keys: string[];
  seen: number;
  make: ((values: unknown[]) => Record<string, unknown>) | undefined;
}
const shapes: Shape[] = [];
const keyScratch: string[] = [];
const valueScratch: unknown[] = [];
let shapesEnabled = true;

function readMessage(size: number): Record<string, unknown> {
  const keys = keyScratch;
  const values = valueScratch;
  for (let i = 0; i < size; i++) {
    keys[i] = readKey();
    values[i] = readValue(1);
  }
  const shape = shapesEnabled ? findShape(keys, size) : undefined;
  let object: Record<string, unknown>;
  if (shape?.make !== undefined) {
    object = shape.make(values);
  } else {
    object = {};
    for (let i = 0; i < size; i++) object[keys[i]!] = values[i];
  }
  for (let i = 0; i < size; i++) values[i] = undefined; // hold no payload past this message
  return object;
}

function findShape(keys: string[], size: number): Shape | undefined {
  for (let s = 0; s < shapes.length; s++) {
    const shape = shapes[s]!;
    if (shape.keys.length !== size) continue;
    let same = true;
    for (let i = 0; i < size; i++) {
      if (shape.keys[i] !== keys[i]) {
        same = false;
        break;
      }
    }
    if (!same) continue;
    if (shape.make === undefined && ++shape.seen >= SHAPE_AFTER) shape.make = compileShape(shape.keys);
    if (s > 0) {
      // Frequent shapes move to the front (and the last one is the first to go).
      shapes[s] = shapes[s - 1]!;
      shapes[s - 1] = shape;
    }
    return shape;
  }
  const shape: Shape = { keys: keys.slice(0, size), seen: 1, make: undefined };
  if (new Set(shape.keys).size !== size) return undefined; // a repeated key: built one at a time
  if (shapes.length >= MAX_SHAPES) shapes.pop();
  shapes.push(shape);
  return shape;
}

function compileShape(keys: readonly string[]): Shape["make"] {
  const fields = keys.map((key, i) => `${JSON.stringify(key)}: v[${i}]`).join(", ");
  try {
    return new Function("v", `return { ${fields} };`) as (values: unknown[]) => Record<string, unknown>;
  } catch {
    shapesEnabled = false; // code generation disallowed (--disallow-code-generation-from-strings)
    return undefined;
  }
}

function readArray(length: number, depth: number): unknown[] {
  if (depth >= MAX_DEPTH || length > end - at) throw NOT_SIMPLE;
  const array = new Array<unknown>(length);
  for (let i = 0; i < length; i++) array[i] = readValue(depth + 1);
  return array;
}

function readBin(length: number): Buffer {
  need(length);
  const bytes = src.subarray(at, at + length);
  at += length;
  return bytes;
}

/** Short strings seen before, by a hash of their bytes: keys and values such as "call" come back as one string. */
const SHORT = 16;
/** Longer strings are checked natively. */
const LONG = 64;
const cache: (string | undefined)[] = new Array<string | undefined>(4096);

function readString(length: number): string {
  need(length);
  const from = at;
  const to = from + length;
  // Text beyond ASCII is msgpackr's (its UTF-8 decoding is the reference).
  if (length > LONG) {
    if (!isAscii(src.subarray(from, to))) throw NOT_SIMPLE;
  } else {
    for (let i = from; i < to; i++) if (src[i]! >= 0x80) throw NOT_SIMPLE;
  }
  at = to;
  if (length === 0) return "";
  if (length > SHORT) return latin1(from, to);
  const slot = ((length << 7) ^ (src[from]! << 4) ^ (src[to - 1]! << 1) ^ src[from + (length >> 1)]!) & 0xfff;
  const cached = cache[slot];
  if (cached !== undefined && cached.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (cached.charCodeAt(i) !== src[from + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  const string = latin1(from, to);
  cache[slot] = string;
  return string;
}

function latin1(from: number, to: number): string {
  return src.latin1Slice !== undefined ? src.latin1Slice(from, to) : src.toString("latin1", from, to);
}
