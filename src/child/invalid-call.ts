import type { RejectReason } from "../wire/index.js";

/** Calls refused for a malformed field; the rest of the rejected frames are dropped silently. */
export const INVALID_CALL_REASONS: ReadonlySet<RejectReason> = new Set(["missing-function", "bad-args", "bad-namespace"]);

/** The `error` reply's text for a call refused for `reason` (the v4 wording). */
export function invalidCallText(reason: RejectReason): string {
  switch (reason) {
    case "missing-function":
      return "InvalidMessageError: Message missing 'function' field";
    case "bad-args":
      return "InvalidMessageError: 'args' must be an array";
    case "bad-namespace":
      return "InvalidMessageError: 'namespace' must be a string";
    default:
      return `InvalidMessageError: invalid call (${reason})`;
  }
}
