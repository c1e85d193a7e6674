/**
 * How `multifrost call` reads its arguments and prints results. Both directions use the same
 * readable forms for what JSON lacks:
 * - an argument is parsed as JSON when it parses (`5`, `true`, `null`, `"5"`, `[1,2]`, `{"a":1}`),
 *   else it is the string itself (`hello`); `123n` is a BigInt; `{"$bin": "<base64>"}` is bytes.
 * - a result prints as JSON (two-space indented), with a BigInt as the string `"123n"`, bytes as
 *   `{"$bin": "<base64>"}`, a Map as an object, a Set as an array, `undefined` as `null`.
 */

const BIGINT = /^-?\d+n$/;

/** One command-line argument as a call argument. */
export function parseArgument(text: string): unknown {
  if (BIGINT.test(text)) return BigInt(text.slice(0, -1));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  return revive(value);
}

/** `{"$bin": "..."}` anywhere in a parsed argument becomes a Uint8Array. */
function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === "$bin" && typeof entries[0]![1] === "string") {
      return new Uint8Array(Buffer.from(entries[0]![1], "base64"));
    }
    return Object.fromEntries(entries.map(([key, inner]) => [key, revive(inner)]));
  }
  return value;
}

/** A call's result as JSON text, with the readable forms above. */
export function formatResult(value: unknown): string {
  return JSON.stringify(toJson(value), null, 2) ?? "null";
}

function toJson(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Uint8Array) return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (ArrayBuffer.isView(value)) return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(toJson);
  if (value instanceof Set) return [...value].map(toJson);
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, inner]) => [String(key), toJson(inner)]));
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toJson(inner)]));
  }
  return value;
}
