import { assign, setup } from "xstate";

/**
 * The lifecycle of one worker connection. Only lifecycle events reach it — never individual
 * calls (DESIGN §3). Supervision (degraded, circuit-open, restarting) extends this machine.
 */
export type LifecycleEvent =
  | { type: "START" }
  | { type: "READY" }
  | { type: "START_FAILED"; reason: string }
  | { type: "EXITED"; reason: string }
  | { type: "STOP" }
  | { type: "STOPPED" };

export type LifecycleState = "idle" | "starting" | "connected" | "exited" | "failed" | "stopping" | "stopped";

export interface LifecycleContext {
  /** Why the machine entered its current state. */
  reason: string;
}

export const workerLifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
  },
  actions: {
    noteReason: assign(({ event }) => ({
      reason: "reason" in event ? event.reason : event.type.toLowerCase(),
    })),
  },
}).createMachine({
  id: "worker",
  initial: "idle",
  context: { reason: "created" },
  states: {
    idle: { on: { START: { target: "starting", actions: "noteReason" } } },
    starting: {
      on: {
        READY: { target: "connected", actions: "noteReason" },
        START_FAILED: { target: "failed", actions: "noteReason" },
        EXITED: { target: "failed", actions: "noteReason" },
        STOP: { target: "stopping", actions: "noteReason" },
      },
    },
    connected: {
      on: {
        EXITED: { target: "exited", actions: "noteReason" },
        STOP: { target: "stopping", actions: "noteReason" },
      },
    },
    exited: {
      on: {
        START: { target: "starting", actions: "noteReason" },
        STOP: { target: "stopping", actions: "noteReason" },
      },
    },
    failed: {
      on: {
        START: { target: "starting", actions: "noteReason" },
        STOP: { target: "stopping", actions: "noteReason" },
      },
    },
    stopping: { on: { STOPPED: { target: "stopped", actions: "noteReason" }, EXITED: {} } },
    stopped: { on: { START: { target: "starting", actions: "noteReason" } } },
  },
});

