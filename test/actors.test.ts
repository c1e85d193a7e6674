import { describe, expect, it } from "vitest";
import { CallTable } from "../src/actors/call-table.js";
import { callableNames } from "../src/actors/callable-names.js";
import { splitCommandLine } from "../src/actors/command-line.js";
import { LineSplitter } from "../src/actors/line-splitter.js";
import { SendQueue } from "../src/actors/send-queue.js";
import { CallTimeoutError } from "../src/errors.js";

describe("splitCommandLine", () => {
  it("splits words and honours quotes and escapes", () => {
    expect(splitCommandLine("npx tsx")).toEqual(["npx", "tsx"]);
    expect(splitCommandLine(`  python3   -u  `)).toEqual(["python3", "-u"]);
    expect(splitCommandLine(`node "my file.mjs" 'a b' c\\ d ""`)).toEqual(["node", "my file.mjs", "a b", "c d", ""]);
  });

  it("keeps an existing path with spaces whole", () => {
    expect(splitCommandLine(process.execPath)).toEqual([process.execPath]);
  });

  it("rejects an unbalanced quote", () => {
    expect(() => splitCommandLine(`node "oops`)).toThrow(/unbalanced/);
  });
});

describe("LineSplitter", () => {
  it("emits whole lines across chunks, strips CR, flushes the rest", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), 8);
    splitter.write("one\r\ntw");
    splitter.write("o\nthree");
    expect(lines).toEqual(["one", "two"]);
    splitter.write("-and-more-than-eight");
    splitter.flush();
    expect(lines.join("|")).toBe("one|two|three-an|d-more-t|han-eigh|t");
  });
});

describe("CallTable", () => {
  const timeoutError = (call: { functionName: string; timeoutMs: number }) => new CallTimeoutError(call.functionName, call.timeoutMs);

  it("resolves and rejects by id and ignores unknown ids", async () => {
    const table = new CallTable(timeoutError);
    const a = table.register("a", "f", 1000, "default");
    const b = table.register("b", "g", Infinity, "default");
    expect(table.resolve("a", 1)).toBe(true);
    expect(table.resolve("a", 2)).toBe(false);
    expect(table.reject("b", new Error("no"))).toBe(true);
    await expect(a).resolves.toBe(1);
    await expect(b).rejects.toThrow("no");
    expect(table.size).toBe(0);
  });

  it("expires calls by deadline across different timeouts with one timer", async () => {
    const table = new CallTable(timeoutError);
    const started = Date.now();
    const slow = table.register("slow", "slow", 400, "default");
    const fast = table.register("fast", "fast", 50, "default");
    const kept = table.register("kept", "kept", 5000, "default");
    await expect(fast).rejects.toBeInstanceOf(CallTimeoutError);
    expect(table.has("slow")).toBe(true);
    await expect(slow).rejects.toThrow(/'slow' timed out after 400ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    table.resolve("kept", "ok");
    await expect(kept).resolves.toBe("ok");
    expect(table.size).toBe(0);
  });

  it("rejects everything at once", async () => {
    const table = new CallTable(timeoutError);
    const calls = [table.register("1", "f", 1000, "default"), table.register("2", "f", Infinity, "default")];
    table.rejectAll((call) => new Error(`gone ${call.id}`));
    await expect(calls[0]).rejects.toThrow("gone 1");
    await expect(calls[1]).rejects.toThrow("gone 2");
  });
});

describe("SendQueue", () => {
  /** Models a zeromq.js socket: most sends complete at once, some are deferred, and a send while one is pending throws EBUSY synchronously. */
  function fakeSocket(deferEvery: number) {
    const sent: number[] = [];
    let pending = false;
    let busyThrows = 0;
    let calls = 0;
    const send = (item: number): Promise<void> => {
      if (pending) {
        busyThrows++;
        throw Object.assign(new Error("Socket is busy writing"), { code: "EBUSY" });
      }
      if (++calls % deferEvery !== 0) {
        sent.push(item);
        return Promise.resolve();
      }
      pending = true;
      return new Promise((resolve) =>
        setImmediate(() => {
          pending = false;
          sent.push(item);
          resolve();
        }),
      );
    };
    return { send, sent, busyThrows: () => busyThrows };
  }

  it("sends in order, never two at once, retrying after EBUSY", async () => {
    const socket = fakeSocket(7);
    const failures: unknown[] = [];
    const queue = new SendQueue<number>(socket.send, (_item, _tag, error) => failures.push(error));
    for (let i = 0; i < 1000; i++) queue.push(i);
    await queue.drained();
    expect(socket.sent).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(failures).toEqual([]);
    expect(socket.busyThrows()).toBeGreaterThan(0); // the deferred sends were really waited for
  });

  it("holds items pushed while a bind is in progress and sends them, in order, once it settles", async () => {
    const sent: number[] = [];
    const queue = new SendQueue<number>(async (item) => {
      sent.push(item);
    }, () => undefined);
    let finishBind!: () => void;
    queue.holdUntil(new Promise<void>((resolve) => (finishBind = resolve)));
    queue.push(1);
    queue.push(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([]);
    finishBind();
    await queue.drained();
    expect(sent).toEqual([1, 2]);
  });

  it("reports failed sends with their tag and keeps going", async () => {
    const failures: [number, string | undefined][] = [];
    const sent: number[] = [];
    const queue = new SendQueue<number>(async (item) => {
      if (item === 2) throw new Error("boom");
      sent.push(item);
    }, (item, tag) => failures.push([item, tag]));
    queue.push(1, "a");
    queue.push(2, "b");
    queue.push(3, "c");
    await queue.drained();
    expect(sent).toEqual([1, 3]);
    expect(failures).toEqual([[2, "b"]]);
    queue.close(new Error("closed"));
    queue.push(4, "d");
    expect(failures).toEqual([[2, "b"], [4, "d"]]);
  });
});

describe("callableNames", () => {
  class Base {
    run(): void {}
    stop(): void {}
    listFunctions(): string[] {
      return [];
    }
  }
  class Mid extends Base {
    shared(): number {
      return 1;
    }
  }
  class Leaf extends Mid {
    field = (): number => 2;
    _hidden = (): number => 3;
    leaf(): number {
      return 4;
    }
    override run(): void {}
    override toString(): string {
      return "leaf";
    }
    _private(): void {}
    #secret(): number {
      return 5;
    }
    get accessor(): number {
      return this.#secret();
    }
  }

  it("lists only user-defined methods and function fields, across the class chain", () => {
    expect(callableNames(new Leaf(), Base.prototype)).toEqual(["field", "leaf", "shared"]);
  });
});
