import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { and, createMachine, fromPromise, not, setup } from "xstate";
import { findMachines, renderDocument, renderMachine } from "../scripts/machine-diagrams.mjs";

const repo = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

describe("renderMachine", () => {
  it("draws compound, parallel, final, history, after, always, guards and invokes", () => {
    const machine = setup({
      delays: { retryDelay: 500 },
      guards: { canRetry: () => true, isHealthy: () => true },
      actors: {
        connectSocket: fromPromise(async () => undefined),
        heartbeat: fromPromise(async () => undefined),
      },
    }).createMachine({
      id: "demo",
      initial: "idle",
      states: {
        idle: { on: { CONNECT: "connecting", PING: { actions: [] } } },
        connecting: {
          invoke: { src: "connectSocket", onDone: "online", onError: { target: "backoff" } },
          on: { CANCEL: "idle" },
        },
        backoff: { after: { retryDelay: { target: "connecting", guard: "canRetry" }, 10000: "closed" } },
        online: {
          type: "parallel",
          on: { DISCONNECT: "closed" },
          onDone: "closed",
          states: {
            link: {
              initial: "up",
              states: {
                up: { invoke: { src: "heartbeat" }, on: { "circuit-trip": "circuit-open", LOST: "#demo.backoff" } },
                "circuit-open": { always: { target: "drained", guard: and(["isHealthy", not("canRetry")]) } },
                drained: { type: "final" },
              },
            },
            traffic: {
              initial: "quiet",
              states: {
                quiet: { on: { SEND: "busy" } },
                busy: { on: { SENT: "quiet", SEND: { target: "busy", reenter: true }, NOTE: {} } },
                hist: { type: "history", history: "deep" },
              },
            },
          },
        },
        closed: { type: "final" },
      },
    });

    expect(renderMachine(machine).split("\n")).toEqual([
      "stateDiagram-v2",
      "  [*] --> idle",
      '  state "idle" as idle',
      '  state "connecting" as connecting',
      "  note right of connecting : invokes connectSocket",
      '  state "backoff" as backoff',
      '  state "online" as online {',
      '    state "link" as online_link {',
      "      [*] --> online_link_up",
      '      state "up" as online_link_up',
      "      note right of online_link_up : invokes heartbeat",
      '      state "circuit-open" as online_link_circuit_open',
      '      state "drained" as online_link_drained',
      "      online_link_drained --> [*]",
      "      online_link_up --> online_link_circuit_open : circuit-trip",
      "      online_link_circuit_open --> online_link_drained : always [and(isHealthy, not(canRetry))]",
      "    }",
      "    --",
      '    state "traffic" as online_traffic {',
      "      [*] --> online_traffic_quiet",
      '      state "quiet" as online_traffic_quiet',
      '      state "busy" as online_traffic_busy',
      '      state "hist (H*)" as online_traffic_hist',
      "      online_traffic_quiet --> online_traffic_busy : SEND",
      "      online_traffic_busy --> online_traffic_quiet : SENT",
      "      online_traffic_busy --> online_traffic_busy : SEND",
      "    }",
      "  }",
      '  state "closed" as closed',
      "  closed --> [*]",
      "  idle --> connecting : CONNECT",
      "  connecting --> idle : CANCEL",
      "  connecting --> online : onDone (connectSocket)",
      "  connecting --> backoff : onError (connectSocket)",
      // XState keeps integer-like keys first, as JavaScript objects do.
      "  backoff --> closed : after 10000ms",
      "  backoff --> connecting : after retryDelay [canRetry]",
      "  online --> closed : DISCONNECT",
      "  online --> closed : onDone",
      // Crosses composite boundaries, so it is written at the top level.
      "  online_link_up --> backoff : LOST",
    ]);
  });

  it("wraps the root when it has transitions of its own, and keeps ids clear of Mermaid's words", () => {
    const machine = createMachine({
      id: "root-level",
      initial: "a",
      on: { RESET: ".a" },
      invoke: { src: createMachine({ id: "child" }) },
      states: {
        a: { on: { "ns:event;x": "state" } },
        state: { initial: "start", states: { start: {}, end: {} } },
        default: {},
        "circuit-open": {},
        circuit_open: {},
      },
    });

    expect(renderMachine(machine).split("\n")).toEqual([
      "stateDiagram-v2",
      "  [*] --> root_level",
      '  state "root-level" as root_level {',
      "    [*] --> a",
      '    state "a" as a',
      '    state "state" as state_2 {',
      "      [*] --> state_start_2",
      '      state "start" as state_start_2',
      '      state "end" as state_end_2',
      "    }",
      '    state "default" as s_default',
      '    state "circuit-open" as circuit_open',
      '    state "circuit_open" as circuit_open_2',
      "    a --> state_2 : ns\u2236event\uFF1Bx",
      "  }",
      "  note right of root_level : invokes child",
      "  root_level --> a : RESET",
    ]);
  });
});

describe("docs/machines.md", () => {
  it("is what scripts/machine-diagrams.mjs renders from dist/machines", async () => {
    const machines = (await import(new URL("../dist/machines/index.js", import.meta.url).href)) as Record<
      string,
      unknown
    >;
    expect(findMachines(machines).length).toBeGreaterThan(0);
    const actual = readFileSync(repo("docs/machines.md"), "utf8");
    expect(actual, "docs/machines.md is out of date: run `npm run docs:machines` and commit it").toBe(
      renderDocument(machines),
    );
  });

  it("passes the script's own --check", () => {
    const result = spawnSync(process.execPath, [repo("scripts/machine-diagrams.mjs"), "--check"], {
      encoding: "utf8",
    });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  });
});
