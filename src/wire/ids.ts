/**
 * Message ids: UUIDv4s in their 32-hex-digit form (Python's `uuid4().hex`; every UUID parser
 * reads it), unique per process without a crypto call per message. One random UUID per process
 * supplies the first 20 digits (version and variant bits included); the last 12 count up from a
 * random start. Without the four hyphens an `add(1, 2)` call is 125 bytes instead of 129, under
 * the 128 bytes up to which zeromq.js copies a frame instead of sending it zero-copy (a native
 * reference, a release on the I/O thread and a wake-up of the JS thread per message).
 *
 * The id is kept as ASCII bytes and incremented in place, then read out as one flat string
 * (a concatenation would be a rope that every Map lookup and encoder has to flatten first).
 *
 * Made on the first id, with the global Web Crypto: a spawned worker needs none until it prints,
 * and importing `node:crypto` was ≈ 2 ms of its startup (docs/performance.md, A lean child).
 */
const PREFIX_LENGTH = 20;
const ID_LENGTH = 32;

/** Node's Buffer has `latin1Slice` (what `toString("latin1")` calls) without a type for it. */
type Latin1Buffer = Buffer & { latin1Slice?(start: number, end: number): string };
let bytes: Latin1Buffer | undefined;

function firstId(): Latin1Buffer {
  const start = Math.floor(Math.random() * 0x1000000);
  return Buffer.from(crypto.randomUUID().replaceAll("-", "").slice(0, PREFIX_LENGTH) + start.toString(16).padStart(12, "0"), "latin1");
}

export function nextMessageId(): string {
  bytes ??= firstId();
  // Add one to the hex counter (from "ffffffffffff" it wraps to zero).
  for (let i = ID_LENGTH - 1; i >= PREFIX_LENGTH; i--) {
    const digit = bytes[i]!;
    if (digit === 0x66) {
      bytes[i] = 0x30; // 'f' + 1 = '0', carry on
      continue;
    }
    bytes[i] = digit === 0x39 ? 0x61 : digit + 1; // '9' + 1 = 'a'
    break;
  }
  return bytes.latin1Slice !== undefined ? bytes.latin1Slice(0, ID_LENGTH) : bytes.toString("latin1", 0, ID_LENGTH);
}
