import { fileURLToPath } from "node:url";
import { inspect } from "node:util";

/** Absolute path of a file in test/fixtures. */
export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/** The error a promise rejects with; fails the test if it resolves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary error fields
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`expected a rejection, got ${inspect(value)}`);
}
