export * from "./constants.js";
export * from "./messages.js";
export { nextMessageId } from "./ids.js";
export { encodeMessage, decodeFrame } from "./codec.js";
export { prepareForWire } from "./prepare.js";
export { parseFrame, RejectedFrame, type ParsedFrame, type RejectReason } from "./validate.js";
