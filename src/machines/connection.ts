import { and, assign, fromPromise, not, raise, setup, type SnapshotFrom } from "xstate";
import { backoffDelay } from "../core/backoff.js";
import { errorSummary } from "../errors.js";
import {
  circuitResetDelay,
  downOf,
  restartAllowed,
  type CloseInput,
  type CloseMode,
  type ConnectionContext,
  type ConnectionEvent,
  type ConnectionInput,
  type ConnectionState,
  type OpenInput,
} from "./connection-types.js";

export { circuitResetDelay, LIVE_STATES } from "./connection-types.js";
export type {
  CircuitSettings,
  CloseInput,
  CloseMode,
  ConnectionContext,
  ConnectionEvent,
  ConnectionInput,
  ConnectionState,
  DownInfo,
  HeartbeatSettings,
  OpenInput,
  RestartType,
} from "./connection-types.js";

/**
 * One worker connection (DESIGN §4): spawning/connecting → connected ⇄ degraded → circuit-open ⇄
 * half-open, → restarting → …, stopping → stopped, failed.
 *
 * The machine decides; the owner (ParentWorker) does the I/O through three injected actors —
 * `open` (spawn or discover + connect, resolved by the first heartbeat answer), `ping` (one
 * heartbeat, resolves with its RTT) and `close` (tear the connection down, gracefully or not) —
 * and two injected guards — `workerBusy` (calls in flight that explain a missed heartbeat: v4
 * children answer heartbeats only between calls) and `workerStopped` (the OS says the process is
 * stopped) — and reports what it sees: the process exited or the service vanished (`DOWN`), the
 * failure window tripped (`TRIPPED`), a counted call failure (`CALL_FAILED`), the half-open
 * probe's outcome. Individual calls never reach the machine (DESIGN §3).
 *
 * Busy ≠ dead: missed heartbeats make a worker `degraded`; only when they reach `maxMisses` with
 * no call in flight to explain them, or as soon as the OS says it is stopped, is it unresponsive.
 *
 * Supervised (`supervised: true`), the machine never restarts by itself: a down connection is
 * closed and waits in `restarting` for the supervisor's `REOPEN` (the supervisor counts the
 * restart against its intensity and applies the backoff); a restart whose start fails goes back
 * to waiting there, so the supervisor counts that attempt too (OTP).
 */

const OPEN = [
  { guard: "isSpawnMode", target: "#connection.spawning" },
  { target: "#connection.connecting" },
] as const;

const connectionSetup = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
  },
  actors: {
    open: fromPromise<void, OpenInput>(async () => {
      throw new Error("open is provided by the connection's owner");
    }),
    ping: fromPromise<number, { timeoutMs: number }>(async () => {
      throw new Error("ping is provided by the connection's owner");
    }),
    close: fromPromise<void, CloseInput>(async () => undefined),
  },
  guards: {
    isSpawnMode: ({ context }) => context.mode === "spawn",
    heartbeatEnabled: ({ context }) => context.heartbeat.intervalMs > 0,
    restartOnDown: ({ context, event }) => restartAllowed(context, downOf(event)),
    isNormalDown: ({ event }) => downOf(event).normal,
    /** A restart attempt could not open: try again while restarts are allowed (supervised: the supervisor decides). */
    retryOpen: ({ context }) =>
      context.restarts > 0 && restartAllowed(context, { reason: "open failed", normal: false }),
    slowBeat: ({ context, event }) => "output" in event && (event.output as number) > context.heartbeat.slowMs,
    lastMiss: ({ context }) => context.misses + 1 >= context.heartbeat.maxMisses,
    /** Calls in flight within their deadlines explain a missed heartbeat. Provided by the owner. */
    workerBusy: () => false,
    /** The OS says the worker is stopped (SIGSTOP, a debugger). Provided by the owner. */
    workerStopped: () => false,
    reopenNow: ({ context }) => !context.waitBackoff,
    selfRestarting: ({ context }) => !context.supervised,
  },
  delays: {
    heartbeatInterval: ({ context }) => context.heartbeat.intervalMs,
    heartbeatTimeout: ({ context }) => context.heartbeat.timeoutMs,
    backoff: ({ context }) =>
      context.waitBackoff ? backoffDelay(Math.max(0, context.restarts - 1), context.backoff, context.random) : 0,
    circuitReset: ({ context }) => circuitResetDelay(context.trips, context.circuit),
    stablePeriod: ({ context }) => context.stablePeriodMs,
  },
  actions: {
    noteStart: assign({ reason: "start" }),
    noteDown: assign(({ event }) => {
      const down = downOf(event);
      return { reason: down.reason, closeMode: (event.type === "UNRESPONSIVE" ? "kill" : "graceful") as CloseMode };
    }),
    noteRestartOrder: assign(({ event }) =>
      event.type === "RESTART"
        ? { reason: event.reason, closeMode: "graceful" as CloseMode, waitBackoff: event.immediate !== true }
        : {},
    ),
    noteStop: assign(({ event }) => ({ reason: event.type === "STOP" ? (event.reason ?? "stop") : "stop" })),
    noteOpenError: assign(({ event }) => ({
      reason: "error" in event ? `start failed: ${errorSummary(event.error)}` : "start failed",
      closeMode: "kill" as CloseMode,
    })),
    noteReady: assign(({ context }) => ({ reason: context.restarts > 0 ? "restarted" : "ready", misses: 0 })),
    countRestart: assign(({ context }) => ({
      restarts: context.restarts + 1,
      totalRestarts: context.totalRestarts + 1,
    })),
    noteReopen: assign(({ context }) => ({ waitBackoff: true, reason: `restart #${context.restarts}` })),
    noteReopenOrder: assign({ waitBackoff: false }),
    noteStable: assign({ restarts: 0, trips: 0 }),
    noteBeat: assign(({ event }) => ({ misses: 0, lastRttMs: "output" in event ? (event.output as number) : undefined })),
    countMiss: assign(({ context }) => ({ misses: context.misses + 1 })),
    noteReason: assign(({ event }) => {
      switch (event.type) {
        case "BEAT_MISSED":
          return { reason: `heartbeat missed (${event.misses} in a row)${event.busy ? ", calls in flight: busy" : ""}` };
        case "BEAT_SLOW":
          return { reason: `slow heartbeat (${Math.round(event.rttMs)} ms)` };
        case "BEAT_OK":
          return { reason: "recovered" };
        case "TRIPPED":
        case "CALL_FAILED":
        case "PROBE_FAILED":
          return { reason: event.reason };
        case "PROBE_OK":
          return { reason: "probe succeeded" };
        default:
          return {};
      }
    }),
    noteHalfOpen: assign({ reason: "reset timeout elapsed" }),
    raiseUnresponsive: raise(({ context }) => ({ type: "UNRESPONSIVE" as const, misses: context.misses + 1, stopped: false })),
    raiseStopped: raise(({ context }) => ({ type: "UNRESPONSIVE" as const, misses: context.misses + 1, stopped: true })),
    raiseMissed: raise(({ context }, params: { busy: boolean }) => ({ type: "BEAT_MISSED" as const, misses: context.misses, busy: params.busy })),
    countTrip: assign(({ context }) => ({ trips: context.trips + 1 })),
  },
});

/** spawning and connecting do the same (the owner's `open` knows which); the names tell the user. */
const openingState = connectionSetup.createStateConfig({
  invoke: {
    src: "open",
    input: ({ context }) => ({ attempt: context.restarts }),
    onDone: { target: "live", actions: "noteReady" },
    onError: [
      { guard: "retryOpen", target: "restarting", actions: "noteOpenError" },
      { target: "failed", actions: "noteOpenError" },
    ],
  },
  on: { STOP: { target: "stopping", actions: "noteStop" } },
});

/**
 * A heartbeat not answered (timed out, or the ping failed). A stopped process is hung at once;
 * otherwise the last allowed miss makes the worker unresponsive unless calls in flight explain it.
 */
const missedBeat = [
  { guard: "workerStopped", actions: "raiseStopped" },
  { guard: and(["lastMiss", not("workerBusy")]), actions: "raiseUnresponsive" },
  { guard: "workerBusy", target: "waiting", actions: ["countMiss", { type: "raiseMissed", params: { busy: true } }] },
  { target: "waiting", actions: ["countMiss", { type: "raiseMissed", params: { busy: false } }] },
] as const;

export const connectionMachine = connectionSetup.createMachine({
  id: "connection",
  initial: "idle",
  context: ({ input }) => ({
    ...input,
    supervised: input.supervised ?? false,
    random: input.random ?? Math.random,
    reason: "created",
    restarts: 0,
    totalRestarts: 0,
    trips: 0,
    misses: 0,
    lastRttMs: undefined,
    closeMode: "graceful",
    waitBackoff: true,
  }),
  states: {
    idle: {
      on: { START: { target: "opening", actions: "noteStart" } },
    },
    // Routes to spawning or connecting, so the state names say which one happens.
    opening: { always: [...OPEN] },
    spawning: openingState,
    connecting: openingState,
    live: {
      type: "parallel",
      on: {
        DOWN: [
          { guard: "restartOnDown", target: "restarting", actions: "noteDown" },
          { guard: "isNormalDown", target: "stopping", actions: "noteDown" },
          { target: "failed", actions: "noteDown" },
        ],
        UNRESPONSIVE: [
          { guard: "restartOnDown", target: "restarting", actions: "noteDown" },
          { target: "failed", actions: "noteDown" },
        ],
        RESTART: { target: "restarting", actions: "noteRestartOrder" },
        STOP: { target: "stopping", actions: "noteStop" },
      },
      states: {
        health: {
          initial: "connected",
          states: {
            connected: {
              after: { stablePeriod: { actions: "noteStable" } },
              on: {
                BEAT_MISSED: { target: "degraded", actions: "noteReason" },
                BEAT_SLOW: { target: "degraded", actions: "noteReason" },
                // Only heartbeats bring a degraded connection back, so without them a failed call does not degrade it.
                CALL_FAILED: { guard: "heartbeatEnabled", target: "degraded", actions: "noteReason" },
                TRIPPED: { target: "circuit-open", actions: "noteReason" },
              },
            },
            degraded: {
              on: {
                BEAT_OK: { target: "connected", actions: "noteReason" },
                BEAT_MISSED: { actions: "noteReason" },
                TRIPPED: { target: "circuit-open", actions: "noteReason" },
              },
            },
            "circuit-open": {
              entry: "countTrip",
              after: { circuitReset: { target: "half-open", actions: "noteHalfOpen" } },
            },
            "half-open": {
              on: {
                PROBE_OK: { target: "connected", actions: "noteReason" },
                PROBE_FAILED: { target: "circuit-open", actions: "noteReason" },
                TRIPPED: { target: "circuit-open", actions: "noteReason" },
              },
            },
          },
        },
        heartbeat: {
          initial: "waiting",
          states: {
            waiting: {
              after: { heartbeatInterval: { guard: "heartbeatEnabled", target: "pinging" } },
            },
            pinging: {
              invoke: {
                src: "ping",
                input: ({ context }) => ({ timeoutMs: context.heartbeat.timeoutMs }),
                onDone: [
                  {
                    guard: "slowBeat",
                    target: "waiting",
                    actions: ["noteBeat", raise(({ event }) => ({ type: "BEAT_SLOW" as const, rttMs: event.output }))],
                  },
                  {
                    target: "waiting",
                    actions: ["noteBeat", raise(({ event }) => ({ type: "BEAT_OK" as const, rttMs: event.output }))],
                  },
                ],
                onError: [...missedBeat],
              },
              after: { heartbeatTimeout: [...missedBeat] },
            },
          },
        },
      },
    },
    restarting: {
      entry: "countRestart",
      initial: "closing",
      states: {
        closing: {
          invoke: {
            src: "close",
            input: ({ context }) => ({ mode: context.closeMode, reason: context.reason }),
            onDone: { target: "waiting" },
            onError: { target: "waiting" },
          },
        },
        // An ordered restart opens at once; on its own, after the backoff; supervised, on REOPEN.
        waiting: {
          always: { guard: "reopenNow", target: "#connection.opening", actions: "noteReopen" },
          after: { backoff: { guard: "selfRestarting", target: "#connection.opening", actions: "noteReopen" } },
          on: { REOPEN: { target: "#connection.opening", actions: "noteReopen" } },
        },
      },
      on: {
        STOP: { target: "stopping", actions: "noteStop" },
        // An order that comes while the old connection is still closing is kept, not lost.
        REOPEN: { actions: "noteReopenOrder" },
      },
    },
    stopping: {
      invoke: {
        src: "close",
        input: ({ context }) => ({ mode: "graceful", reason: context.reason }),
        onDone: { target: "stopped" },
        onError: { target: "stopped" },
      },
    },
    stopped: {
      on: { START: { target: "opening", actions: "noteStart" } },
    },
    failed: {
      invoke: {
        src: "close",
        input: ({ context }) => ({ mode: context.closeMode, reason: context.reason }),
      },
      on: {
        START: { target: "opening", actions: "noteStart" },
        // Through stopping: stop() resolves only once the process group is gone.
        STOP: { target: "stopping", actions: "noteStop" },
      },
    },
  },
});

export type ConnectionSnapshot = SnapshotFrom<typeof connectionMachine>;

/** The public state name of a snapshot. */
export function connectionStateOf(snapshot: ConnectionSnapshot): ConnectionState {
  const value = snapshot.value;
  if (typeof value === "string") return value === "opening" ? "spawning" : (value as ConnectionState);
  if ("live" in value) return (value.live as { health: ConnectionState }).health;
  return "restarting";
}
