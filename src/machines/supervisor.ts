import { assign, fromPromise, setup, type SnapshotFrom } from "xstate";
import { errorSummary } from "../errors.js";

/**
 * A supervisor's own lifecycle (DESIGN §5): starting (children in order, each ready before the
 * next) → running → stopping (reverse order) → stopped; giving up (restart intensity exceeded,
 * or a child that cannot be brought back) stops the children and ends in `failed`, which the
 * parent supervisor sees as this child going down. Which children to restart, and when to give
 * up, is decided by the owner (src/supervisor.ts) and reported here as events; the machine's
 * `startChildren` / `stopChildren` actors do the work.
 */

export type SupervisorState = "idle" | "starting" | "running" | "stopping" | "stopped" | "failing" | "failed";

export type SupervisorEvent =
  | { type: "START" }
  | { type: "STOP"; reason?: string }
  | { type: "GIVE_UP"; reason: string }
  | { type: "CHILD_RESTARTED"; child: string; reason: string };

export interface SupervisorContext {
  reason: string;
  /** Child restarts this supervisor ordered or saw, over its whole life. */
  restarts: number;
}

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
  },
  actors: {
    startChildren: fromPromise<void>(async () => undefined),
    stopChildren: fromPromise<void, { reason: string }>(async () => undefined),
  },
  actions: {
    noteReason: assign(({ event }) => {
      switch (event.type) {
        case "STOP":
          return { reason: event.reason ?? "stop" };
        case "GIVE_UP":
          return { reason: event.reason };
        default:
          return { reason: event.type.toLowerCase() };
      }
    }),
    noteStartError: assign(({ event }) => ({
      reason: "error" in event ? `start failed: ${errorSummary(event.error)}` : "start failed",
    })),
    countRestart: assign(({ context, event }) =>
      event.type === "CHILD_RESTARTED" ? { restarts: context.restarts + 1, reason: `${event.child}: ${event.reason}` } : {},
    ),
  },
}).createMachine({
  id: "supervisor",
  initial: "idle",
  context: { reason: "created", restarts: 0 },
  states: {
    idle: { on: { START: { target: "starting", actions: "noteReason" } } },
    starting: {
      invoke: {
        src: "startChildren",
        onDone: { target: "running", actions: assign({ reason: "all children ready" }) },
        onError: { target: "failing", actions: "noteStartError" },
      },
      on: {
        STOP: { target: "stopping", actions: "noteReason" },
        GIVE_UP: { target: "failing", actions: "noteReason" },
      },
    },
    running: {
      on: {
        CHILD_RESTARTED: { actions: "countRestart" },
        GIVE_UP: { target: "failing", actions: "noteReason" },
        STOP: { target: "stopping", actions: "noteReason" },
      },
    },
    stopping: {
      invoke: {
        src: "stopChildren",
        input: ({ context }) => ({ reason: context.reason }),
        onDone: { target: "stopped" },
        onError: { target: "stopped" },
      },
    },
    stopped: { on: { START: { target: "starting", actions: "noteReason" } } },
    // Giving up: the children are stopped (reverse order) before the failure is reported.
    failing: {
      invoke: {
        src: "stopChildren",
        input: ({ context }) => ({ reason: context.reason }),
        onDone: { target: "failed" },
        onError: { target: "failed" },
      },
    },
    failed: {
      on: {
        START: { target: "starting", actions: "noteReason" },
        STOP: { target: "stopped", actions: "noteReason" },
      },
    },
  },
});

export type SupervisorSnapshot = SnapshotFrom<typeof supervisorMachine>;
