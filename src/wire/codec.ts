import { Packr, Unpackr } from "msgpackr";
import { EncodeError } from "../errors.js";
import type { WireMessage } from "./messages.js";

/**
 * The v4 codec: plain msgpack maps (never msgpackr records), `undefined` as nil, int64 beyond
 * ±2^53 as BigInt, `bin` as Buffer. Values must already have passed `prepareForWire`.
 */
// variableMapSize: fixmap headers for maps of up to 15 keys (msgpackr otherwise writes map16),
// as Python's msgpack does; two bytes less per message.
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, moreTypes: false, variableMapSize: true });
// "auto" (numbers while safe, BigInt beyond ±2^53) is supported at run time but missing from
// msgpackr's type declarations.
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "auto" as unknown as "bigint",
});

export function encodeMessage(message: WireMessage): Buffer {
  try {
    return packr.pack(message);
  } catch (error) {
    throw new EncodeError("message", error instanceof Error ? error.message : String(error));
  }
}

/** Decodes one frame. Throws on bytes that are not exactly one msgpack value. */
export function decodeFrame(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}
