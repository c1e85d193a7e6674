import { spawn, type ChildProcess } from "node:child_process";
import { LineSplitter } from "./line-splitter.js";
import { groupProcesses } from "./proc.js";

/**
 * One child process in its own process group. Reads its stdout/stderr line by line, keeps the
 * last stderr lines for error reports, signals the whole group (so wrappers such as npx, tsx or
 * sh leave no orphans), reports the exit once, and is done only when nothing of the group is
 * left (see `whenExited`).
 */
export interface ProcessSpec {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessEvents {
  onStdout(line: string): void;
  onStderr(line: string): void;
  onExit(exit: ProcessExit): void;
  onSpawnError(error: Error): void;
}

const STDERR_TAIL_LINES = 20;

/** Process groups of children still alive, killed if this process exits without stopping them. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL");
  });
}

function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/** How long the group may take to vanish after its SIGKILL before `whenExited` gives up and warns. */
const GROUP_GONE_TIMEOUT_MS = 2000;
const GROUP_POLL_FIRST_MS = 5;
const GROUP_POLL_MAX_MS = 50;

/**
 * Pids of the group's members that are not zombies; [] once the group is gone. A zombie has
 * ended (no memory, no descriptors, no CPU) and only waits for its parent to read its status;
 * zombies are left out because orphans are reaped by PID 1, and an init that reaps lazily
 * (this project's VMs: 1.3–2 s) would otherwise hold every stop() up by that long.
 * Without /proc (macOS), the group counts as present until kill(-pgid, 0) fails.
 */
function groupMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return [];
  }
  const group = groupProcesses(pgid);
  if (group === undefined) return [pgid];
  return group.filter(({ stat }) => stat.state !== "Z" && stat.state !== "X").map(({ pid }) => pid);
}

/**
 * SIGKILLs the group until none of its members is left (re-sent on every poll, for a member
 * forked while the first signal went out), polling at growing intervals. Resolves with the
 * pids still there after `timeoutMs` ([] when the group is gone).
 */
async function killGroupAndWait(pgid: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let delay = GROUP_POLL_FIRST_MS;
  for (;;) {
    const members = groupMembers(pgid);
    if (members.length === 0 || Date.now() >= deadline) return members;
    signalGroup(pgid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, GROUP_POLL_MAX_MS);
  }
}

export class ProcessActor {
  readonly #child: ChildProcess;
  readonly #stderrTail: string[] = [];
  /** Set when the leader has exited and its output is drained (`onExit` has run). */
  #exit: ProcessExit | undefined;
  /** Resolves once `#exit` is set and the group is gone. */
  #exited: Promise<ProcessExit>;
  #groupGone = false;
  #groupLeft: readonly number[] = [];

  constructor(spec: ProcessSpec, events: ProcessEvents) {
    const [command, ...args] = spec.argv;
    if (command === undefined) throw new Error("empty command line");
    installExitHook();
    this.#child = spawn(command, args, {
      env: spec.env,
      cwd: spec.cwd,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      shell: false,
    });
    const pid = this.#child.pid;
    if (pid !== undefined) liveGroups.add(pid);

    const stdout = new LineSplitter(events.onStdout);
    const stderr = new LineSplitter((line) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      events.onStderr(line);
    });
    this.#child.stdout?.setEncoding("utf8").on("data", (chunk: string) => stdout.write(chunk));
    this.#child.stderr?.setEncoding("utf8").on("data", (chunk: string) => stderr.write(chunk));

    let streamsOpen = 2;
    let exitInfo: ProcessExit | undefined;
    let resolveExited!: (exit: ProcessExit) => void;
    this.#exited = new Promise((resolve) => (resolveExited = resolve));
    // Report the exit once both pipes are drained, so the stderr tail is complete. The exit is
    // reported at once (calls fail fast); `whenExited` waits for the rest of the group too.
    const finish = (): void => {
      if (exitInfo === undefined || streamsOpen > 0 || this.#exit !== undefined) return;
      stdout.flush();
      stderr.flush();
      const exit = exitInfo;
      this.#exit = exit;
      // Usually nothing is left: then `exited` holds before the exit is reported.
      if (pid === undefined || groupMembers(pid).length === 0) {
        this.#groupGone = true;
        if (pid !== undefined) liveGroups.delete(pid);
        resolveExited(exit);
      } else {
        void killGroupAndWait(pid, GROUP_GONE_TIMEOUT_MS).then((left) => {
          this.#groupLeft = left;
          this.#groupGone = true;
          if (left.length === 0) {
            liveGroups.delete(pid);
          } else {
            // Kept in the exit hook's set: SIGKILLed again if this process exits first.
            process.emitWarning(
              `process group ${pid} still has ${left.join(", ")} ${GROUP_GONE_TIMEOUT_MS} ms after SIGKILL (uninterruptible sleep?)`,
              { code: "MULTIFROST_GROUP_LEFT" },
            );
          }
          resolveExited(exit);
        });
      }
      events.onExit(exit);
    };
    this.#child.stdout?.on("close", () => (streamsOpen--, finish()));
    this.#child.stderr?.on("close", () => (streamsOpen--, finish()));
    this.#child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      // The leader is gone; anything left in its group (a wrapper's grandchild) goes too. Killed
      // now rather than after the pipes close, which such a grandchild may hold open.
      if (pid !== undefined) signalGroup(pid, "SIGKILL");
      // A grandchild that inherited the pipes can keep them open after the leader exits.
      setTimeout(() => {
        streamsOpen = 0;
        finish();
      }, 200).unref();
      finish();
    });
    this.#child.on("error", (error) => {
      if (pid === undefined) {
        // spawn failed (ENOENT, EACCES): there will be no exit event.
        exitInfo = { code: null, signal: null };
        streamsOpen = 0;
        this.#exit = exitInfo;
        this.#groupGone = true;
        events.onSpawnError(error);
        resolveExited(exitInfo);
      }
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** True once the process has exited and nothing of its group is left (as `whenExited`). */
  get exited(): boolean {
    return this.#groupGone;
  }

  get exitInfo(): ProcessExit | undefined {
    return this.#exit;
  }

  get stderrTail(): readonly string[] {
    return this.#stderrTail;
  }

  /**
   * Pids of the group still alive when `whenExited` gave up waiting for them (a process stuck in
   * uninterruptible sleep ignores even SIGKILL); [] normally.
   */
  get groupLeft(): readonly number[] {
    return this.#groupLeft;
  }

  /**
   * Resolves when the process has exited, its output is drained and nothing of its process group
   * is left: once the leader exits, the rest of the group is SIGKILLed and polled until none of
   * it runs (zombies awaiting their reaper count as gone), for at most 2 s, after which it
   * resolves anyway with a `MULTIFROST_GROUP_LEFT` process warning (see `groupLeft`).
   */
  whenExited(): Promise<ProcessExit> {
    return this.#exited;
  }

  /** Sends a signal to the whole process group; false once the leader has exited. */
  signal(signal: NodeJS.Signals): boolean {
    const pid = this.#child.pid;
    if (pid === undefined || this.#exit !== undefined) return false;
    return signalGroup(pid, signal);
  }

  /**
   * Ends the process: waits `graceMs` for it to leave by itself (after a shutdown message the
   * caller already sent), then SIGTERM to the group, then SIGKILL after `killAfterMs`. Resolves
   * as `whenExited`: when nothing of the group is left.
   */
  async terminate(graceMs: number, killAfterMs: number): Promise<ProcessExit> {
    if (this.#exit) return this.#exited;
    if (await this.#exitsWithin(graceMs)) return this.#exited;
    this.signal("SIGTERM");
    if (await this.#exitsWithin(killAfterMs)) return this.#exited;
    this.signal("SIGKILL");
    return this.#exited;
  }

  #exitsWithin(ms: number): Promise<boolean> {
    if (this.#exit) return Promise.resolve(true);
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void this.#exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
