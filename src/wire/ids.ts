import { randomUUID } from "node:crypto";

/**
 * Message ids: UUIDv4-shaped strings, unique per process without a crypto call per message.
 * One random UUID per process supplies the first 24 characters (version and variant bits
 * included); the last 12 hex digits count up from a random start.
 */
const prefix = randomUUID().slice(0, 24);
let counter = Math.floor(Math.random() * 0x1000000);

export function nextMessageId(): string {
  counter = counter >= 0xffffffffffff ? 0 : counter + 1;
  return prefix + counter.toString(16).padStart(12, "0");
}
