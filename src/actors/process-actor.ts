import { spawn, type ChildProcess } from "node:child_process";
import { LineSplitter } from "./line-splitter.js";

/**
 * One child process in its own process group. Reads its stdout/stderr line by line, keeps the
 * last stderr lines for error reports, signals the whole group (so wrappers such as npx, tsx or
 * sh leave no orphans) and reports the exit once.
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

export class ProcessActor {
  readonly #child: ChildProcess;
  readonly #stderrTail: string[] = [];
  #exit: ProcessExit | undefined;
  #exited: Promise<ProcessExit>;

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
    // Report the exit once both pipes are drained, so the stderr tail is complete.
    const finish = (): void => {
      if (exitInfo === undefined || streamsOpen > 0 || this.#exit !== undefined) return;
      stdout.flush();
      stderr.flush();
      this.#exit = exitInfo;
      if (pid !== undefined) {
        // The leader is gone; anything left in its group (a wrapper's grandchild) goes too.
        signalGroup(pid, "SIGKILL");
        liveGroups.delete(pid);
      }
      events.onExit(exitInfo);
      resolveExited(exitInfo);
    };
    this.#child.stdout?.on("close", () => (streamsOpen--, finish()));
    this.#child.stderr?.on("close", () => (streamsOpen--, finish()));
    this.#child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
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
        events.onSpawnError(error);
        resolveExited(exitInfo);
      }
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#exit !== undefined;
  }

  get exitInfo(): ProcessExit | undefined {
    return this.#exit;
  }

  get stderrTail(): readonly string[] {
    return this.#stderrTail;
  }

  /** Resolves when the process has exited and its output is drained. */
  whenExited(): Promise<ProcessExit> {
    return this.#exited;
  }

  /** Sends a signal to the whole process group. */
  signal(signal: NodeJS.Signals): boolean {
    const pid = this.#child.pid;
    if (pid === undefined || this.#exit !== undefined) return false;
    return signalGroup(pid, signal);
  }

  /**
   * Ends the process: waits `graceMs` for it to leave by itself (after a shutdown message the
   * caller already sent), then SIGTERM to the group, then SIGKILL after `killAfterMs`.
   */
  async terminate(graceMs: number, killAfterMs: number): Promise<ProcessExit> {
    if (this.#exit) return this.#exit;
    if (await this.#exitsWithin(graceMs)) return this.#exit!;
    this.signal("SIGTERM");
    if (await this.#exitsWithin(killAfterMs)) return this.#exit!;
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
