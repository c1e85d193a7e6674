import { describe, expect, it } from "vitest";
import { createActor, fromPromise, SimulatedClock } from "xstate";
import {
  circuitResetDelay,
  connectionMachine,
  connectionStateOf,
  type CloseInput,
  type ConnectionInput,
  type ConnectionState,
} from "../src/machines/connection.js";

/** A promise the test settles by hand. */
class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** Lets settled promises reach the machine (promise actors report on a later microtask). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const INPUT: ConnectionInput = {
  mode: "spawn",
  autoRestart: true,
  restartType: "permanent",
  maxRestarts: 3,
  heartbeat: { intervalMs: 1000, timeoutMs: 500, maxMisses: 2, slowMs: 200 },
  backoff: { minMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 },
  circuit: { resetTimeoutMs: 1000, multiplier: 2, maxResetTimeoutMs: 3000 },
  stablePeriodMs: 10_000,
};

function harness(overrides: Partial<ConnectionInput> = {}) {
  const clock = new SimulatedClock();
  const opens: Deferred<void>[] = [];
  const pings: Deferred<number>[] = [];
  const closes: CloseInput[] = [];
  /** What the owner's guards answer: calls in flight, the OS says stopped. */
  const worker = { busy: false, stopped: false };
  const machine = connectionMachine.provide({
    guards: {
      workerBusy: () => worker.busy,
      workerStopped: () => worker.stopped,
    },
    actors: {
      open: fromPromise(() => {
        const open = new Deferred<void>();
        opens.push(open);
        return open.promise;
      }),
      ping: fromPromise(() => {
        const ping = new Deferred<number>();
        pings.push(ping);
        return ping.promise;
      }),
      close: fromPromise<void, CloseInput>(async ({ input }) => {
        closes.push(input);
      }),
    },
  });
  const actor = createActor(machine, { clock, input: { ...INPUT, ...overrides } });
  const states: ConnectionState[] = [];
  actor.subscribe((snapshot) => {
    const state = connectionStateOf(snapshot);
    if (states.at(-1) !== state) states.push(state);
  });
  actor.start();
  const state = () => connectionStateOf(actor.getSnapshot());
  const context = () => actor.getSnapshot().context;
  /** Starts and answers the first open. */
  const connect = async () => {
    actor.send({ type: "START" });
    opens.at(-1)!.resolve();
    await settle();
  };
  return { clock, actor, opens, pings, closes, states, state, context, connect, worker };
}

describe("connection machine (simulated clock)", () => {
  it("starts: spawning → connected once open resolves; connect mode says connecting", async () => {
    const h = harness();
    h.actor.send({ type: "START" });
    expect(h.state()).toBe("spawning");
    h.opens[0]!.resolve();
    await settle();
    expect(h.state()).toBe("connected");
    expect(h.context().reason).toBe("ready");

    const c = harness({ mode: "connect" });
    c.actor.send({ type: "START" });
    expect(c.state()).toBe("connecting");
  });

  it("a first open that fails ends in failed, not in a restart loop", async () => {
    const h = harness();
    h.actor.send({ type: "START" });
    h.opens[0]!.reject(new Error("exited with code 2"));
    await settle();
    expect(h.state()).toBe("failed");
    expect(h.context().reason).toBe("start failed: exited with code 2");
    expect(h.opens).toHaveLength(1);
  });

  it("heartbeats every interval; a slow answer degrades, a fast one recovers", async () => {
    const h = harness();
    await h.connect();
    expect(h.pings).toHaveLength(0);
    h.clock.increment(1000);
    expect(h.pings).toHaveLength(1);
    h.pings[0]!.resolve(350);
    await settle();
    expect(h.state()).toBe("degraded");
    expect(h.context().lastRttMs).toBe(350);
    h.clock.increment(1000);
    h.pings[1]!.resolve(5);
    await settle();
    expect(h.state()).toBe("connected");
    expect(h.states).toEqual(["idle", "spawning", "connected", "degraded", "connected"]);
  });

  it("a missed heartbeat degrades; maxMisses in a row → unresponsive → restart with a hard kill", async () => {
    const h = harness();
    await h.connect();
    h.clock.increment(1000); // ping 1
    h.clock.increment(500); // missed
    expect(h.state()).toBe("degraded");
    expect(h.context().misses).toBe(1);
    h.clock.increment(1000); // ping 2
    h.clock.increment(500); // missed again: 2 of 2
    expect(h.state()).toBe("restarting");
    expect(h.context().reason).toBe("unresponsive: 2 heartbeats missed, no call in flight");
    await settle();
    expect(h.closes).toEqual([{ mode: "kill", reason: "unresponsive: 2 heartbeats missed, no call in flight" }]);
  });

  it("busy is not dead: misses with calls in flight only degrade; once idle, the next miss is the last", async () => {
    const h = harness();
    await h.connect();
    h.worker.busy = true;
    for (let i = 0; i < 5; i++) {
      h.clock.increment(1000);
      h.clock.increment(500);
    }
    expect(h.state()).toBe("degraded");
    expect(h.context().misses).toBe(5);
    expect(h.context().reason).toBe("heartbeat missed (5 in a row), calls in flight: busy");
    h.worker.busy = false;
    h.clock.increment(1000);
    h.clock.increment(500);
    expect(h.state()).toBe("restarting");
    expect(h.context().reason).toBe("unresponsive: 6 heartbeats missed, no call in flight");
  });

  it("a busy worker that answers again recovers without a restart", async () => {
    const h = harness();
    await h.connect();
    h.worker.busy = true;
    for (let i = 0; i < 3; i++) {
      h.clock.increment(1000);
      h.clock.increment(500);
    }
    h.clock.increment(1000);
    h.pings.at(-1)!.resolve(5);
    await settle();
    expect(h.state()).toBe("connected");
    expect(h.context().misses).toBe(0);
    expect(h.states).not.toContain("restarting");
  });

  it("a process the OS says is stopped is hung at the first miss, busy or not", async () => {
    const h = harness({ heartbeat: { intervalMs: 1000, timeoutMs: 500, maxMisses: 10, slowMs: 200 } });
    await h.connect();
    h.worker.busy = true;
    h.worker.stopped = true;
    h.clock.increment(1000);
    h.clock.increment(500);
    expect(h.state()).toBe("restarting");
    expect(h.context().reason).toBe("hung: the process is stopped (state T)");
    await settle();
    expect(h.closes.at(-1)?.mode).toBe("kill");
  });

  it("supervised: a down connection closes and waits for REOPEN, whatever its backoff; a failed reopen waits again", async () => {
    const h = harness({ supervised: true, autoRestart: false, maxRestarts: 0 });
    await h.connect();
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    expect(h.state()).toBe("restarting");
    await settle();
    h.clock.increment(60_000);
    expect(h.opens).toHaveLength(1);
    expect(h.state()).toBe("restarting");
    h.actor.send({ type: "REOPEN" });
    expect(h.state()).toBe("spawning");
    h.opens[1]!.reject(new Error("exited with code 3"));
    await settle();
    expect(h.state()).toBe("restarting");
    expect(h.context().reason).toBe("start failed: exited with code 3");
    h.clock.increment(60_000);
    expect(h.opens).toHaveLength(2);
    h.actor.send({ type: "REOPEN" });
    h.opens[2]!.resolve();
    await settle();
    expect(h.state()).toBe("connected");
    expect(h.context().totalRestarts).toBe(2);
  });

  it("supervised: a transient worker's clean exit stops, a temporary one's crash fails (the supervisor leaves both alone)", async () => {
    const transient = harness({ supervised: true, restartType: "transient" });
    await transient.connect();
    transient.actor.send({ type: "DOWN", reason: "exit 0", normal: true });
    await settle();
    expect(transient.state()).toBe("stopped");
    const temporary = harness({ supervised: true, restartType: "temporary" });
    await temporary.connect();
    temporary.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    expect(temporary.state()).toBe("failed");
  });

  it("a rejected ping counts as a miss", async () => {
    const h = harness();
    await h.connect();
    h.clock.increment(1000);
    h.pings[0]!.reject(new Error("send failed"));
    await settle();
    expect(h.state()).toBe("degraded");
    expect(h.context().misses).toBe(1);
  });

  it("restarts after a crash with exponential backoff, and gives up after maxRestarts", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "DOWN", reason: "exit 137", normal: false });
    expect(h.state()).toBe("restarting");
    expect(h.context().reason).toBe("exit 137");
    await settle(); // close done → waiting for the backoff
    h.clock.increment(99);
    expect(h.opens).toHaveLength(1);
    h.clock.increment(1); // 100 ms: first backoff
    expect(h.state()).toBe("spawning");
    expect(h.opens).toHaveLength(2);
    // the restarted worker fails to come up: the next attempt waits 200 ms
    h.opens[1]!.reject(new Error("boom"));
    await settle();
    expect(h.state()).toBe("restarting");
    await settle();
    h.clock.increment(199);
    expect(h.opens).toHaveLength(2);
    h.clock.increment(1);
    expect(h.opens).toHaveLength(3);
    h.opens[2]!.resolve();
    await settle();
    expect(h.state()).toBe("connected");
    expect(h.context().reason).toBe("restarted");
    expect(h.context().restarts).toBe(2);
    // third crash is restart 3 of 3; the fourth is refused
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    await settle();
    h.clock.increment(400);
    h.opens[3]!.resolve();
    await settle();
    expect(h.state()).toBe("connected");
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    expect(h.state()).toBe("failed");
    expect(h.context().totalRestarts).toBe(3);
  });

  it("a stable period resets the restart count (and so the backoff)", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    await settle();
    h.clock.increment(100);
    h.opens[1]!.resolve();
    await settle();
    expect(h.context().restarts).toBe(1);
    h.clock.increment(10_000); // heartbeats are pending but the state is connected all along
    expect(h.context().restarts).toBe(0);
    expect(h.context().totalRestarts).toBe(1);
  });

  it("restart types: transient skips a normal exit, temporary never restarts", async () => {
    const transient = harness({ restartType: "transient" });
    await transient.connect();
    transient.actor.send({ type: "DOWN", reason: "exit 0", normal: true });
    await settle();
    expect(transient.state()).toBe("stopped");

    const transientCrash = harness({ restartType: "transient" });
    await transientCrash.connect();
    transientCrash.actor.send({ type: "DOWN", reason: "exit 3", normal: false });
    expect(transientCrash.state()).toBe("restarting");

    const temporary = harness({ restartType: "temporary" });
    await temporary.connect();
    temporary.actor.send({ type: "DOWN", reason: "exit 3", normal: false });
    expect(temporary.state()).toBe("failed");

    const manual = harness({ autoRestart: false });
    await manual.connect();
    manual.actor.send({ type: "DOWN", reason: "exit 3", normal: false });
    expect(manual.state()).toBe("failed");
  });

  it("a supervisor's immediate RESTART closes gracefully and skips the backoff", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "RESTART", reason: "sibling math exited", immediate: true });
    expect(h.state()).toBe("restarting");
    await settle();
    expect(h.closes).toEqual([{ mode: "graceful", reason: "sibling math exited" }]);
    h.clock.increment(0);
    expect(h.state()).toBe("spawning");
  });

  it("circuit: trip → open → half-open after the reset timeout → closed on a good probe", async () => {
    const h = harness({ heartbeat: { ...INPUT.heartbeat, intervalMs: 0 } });
    await h.connect();
    h.actor.send({ type: "CALL_FAILED", reason: "call timed out" });
    expect(h.state()).toBe("connected"); // without heartbeats nothing would bring it back from degraded
    h.actor.send({ type: "TRIPPED", reason: "failure rate 60% over 10 calls" });
    expect(h.state()).toBe("circuit-open");
    h.clock.increment(999);
    expect(h.state()).toBe("circuit-open");
    h.clock.increment(1);
    expect(h.state()).toBe("half-open");
    h.actor.send({ type: "PROBE_FAILED", reason: "probe timed out" });
    expect(h.state()).toBe("circuit-open");
    h.clock.increment(1999); // second trip: the reset timeout doubled
    expect(h.state()).toBe("circuit-open");
    h.clock.increment(1);
    expect(h.state()).toBe("half-open");
    h.actor.send({ type: "PROBE_OK" });
    expect(h.state()).toBe("connected");
    expect(h.states).toEqual(["idle", "spawning", "connected", "circuit-open", "half-open", "circuit-open", "half-open", "connected"]);
  });

  it("a counted call failure degrades the connection while heartbeats run; the next good beat recovers it", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "CALL_FAILED", reason: "'slow' timed out" });
    expect(h.state()).toBe("degraded");
    expect(h.context().reason).toBe("'slow' timed out");
    h.clock.increment(1000);
    h.pings[0]!.resolve(3);
    await settle();
    expect(h.state()).toBe("connected");
  });

  it("the circuit's reset timeout grows per trip up to its cap", () => {
    const circuit = INPUT.circuit;
    expect([1, 2, 3, 4, 50].map((trips) => circuitResetDelay(trips, circuit))).toEqual([1000, 2000, 3000, 3000, 3000]);
  });

  it("stop: closes gracefully from any live state and from restarting", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "STOP" });
    expect(h.state()).toBe("stopping");
    await settle();
    expect(h.state()).toBe("stopped");
    expect(h.closes).toEqual([{ mode: "graceful", reason: "stop" }]);

    const r = harness();
    await r.connect();
    r.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    r.actor.send({ type: "STOP" });
    await settle();
    expect(r.state()).toBe("stopped");
    r.clock.increment(10_000);
    expect(r.opens).toHaveLength(1); // the pending restart was cancelled
  });

  it("ignores a late DOWN while restarting or stopped", async () => {
    const h = harness();
    await h.connect();
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    h.actor.send({ type: "DOWN", reason: "exit 1", normal: false });
    expect(h.context().restarts).toBe(1);
  });
});
