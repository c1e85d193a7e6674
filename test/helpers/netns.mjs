// Two "hosts" on one machine: two network namespaces joined by a veth pair, for the multi-host
// test (test/multihost.test.ts) and bench (bench/multihost.mjs). Plain JS (types in netns.d.mts)
// so that both can import it. Needs root (CAP_SYS_ADMIN); every call is synchronous, so `remove()`
// also works from a process 'exit' handler.
//
//   namespace A  (lo, <dev a> 10.213.N.1/24) ──veth── (<dev b> 10.213.N.2/24, lo)  namespace B
//
// Only the two namespaces' own addresses are used: nothing is routed to or from the host's
// namespace. A process started with `pair.exec(side, argv)` (`ip netns exec`, which execs: the pid
// spawn() reports is the command's own) shares the machine's pid space, so it is killed by pid as
// usual; `remove()` kills whatever is still inside either namespace, waits until it is gone, then
// deletes both namespaces (the veth pair goes with them).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const IP = "ip";

/** Runs `ip …`; returns its result (never throws). */
function ip(args) {
  return spawnSync(IP, args, { encoding: "utf8", timeout: 10_000 });
}

/** Runs `ip …`; throws with its stderr when it fails. */
function ipOrThrow(args) {
  const result = ip(args);
  if (result.error) throw new Error(`ip ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`ip ${args.join(" ")} exited with ${result.status}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** Blocks this thread for `ms` (the helpers are synchronous so that an 'exit' handler can use them). */
function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether this process holds CAP_SYS_ADMIN (bit 21 of CapEff), which creating a namespace needs. */
function hasSysAdmin() {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Why network namespaces cannot be created here — not Linux, no CAP_SYS_ADMIN, or the kernel
 * refusing (a container without the privilege) — found by trying; undefined when they can.
 * Any other failure (no `ip` command, say) is not a reason to skip: it is left for the caller's
 * set-up to report.
 */
export function namespaceSkipReason() {
  if (process.platform !== "linux") return `network namespaces are Linux-only (this is ${process.platform})`;
  if (!hasSysAdmin()) {
    return `creating network namespaces needs root or CAP_SYS_ADMIN (uid ${process.getuid?.() ?? "?"} has no CAP_SYS_ADMIN)`;
  }
  const probe = `mf-probe-${process.pid}`;
  const added = ip(["netns", "add", probe]);
  if (added.error) return undefined;
  if (added.status !== 0) {
    return /not permitted|permission denied/i.test(added.stderr) ? `cannot create a network namespace: ${added.stderr.trim()}` : undefined;
  }
  ip(["netns", "del", probe]);
  return undefined;
}

/** Pids of the processes inside namespace `name` (none once it is gone). */
export function namespacePids(name) {
  const result = ip(["netns", "pids", name]);
  if (result.status !== 0) return [];
  return result.stdout
    .split("\n")
    .filter((line) => /^\d+$/.test(line.trim()))
    .map(Number);
}

/** True while `pid` runs (a zombie counts as gone). */
function isAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * SIGKILLs every pid in `pids`, then waits (up to `timeoutMs`) until none runs; returns those
 * still running after that (none, unless a process is stuck in the kernel).
 */
export function killAndWait(pids, timeoutMs = 5000) {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    sleepSync(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * Creates namespaces `mf-a-<tag>` and `mf-b-<tag>` joined by a veth pair (`mfa<tag>` / `mfb<tag>`,
 * addresses `<subnet>.1/24` and `<subnet>.2/24`), every link up, `lo` too. Anything left from an
 * earlier run with the same tag is removed first; a failure half-way removes what was made.
 * @param {{ tag?: string, subnet?: string }} [options] tag: default this pid; subnet: three
 *   octets, default `10.213.<1 + pid % 250>`
 */
export function createHostPair(options = {}) {
  const tag = options.tag ?? String(process.pid);
  const subnet = options.subnet ?? `10.213.${1 + (process.pid % 250)}`;
  if (`mfa${tag}`.length > 15) throw new Error(`tag ${tag} makes a device name longer than 15 characters`);
  const side = (letter, octet) => ({ name: `mf-${letter}-${tag}`, device: `mf${letter}${tag}`, address: `${subnet}.${octet}` });
  const a = side("a", 1);
  const b = side("b", 2);

  const remove = () => {
    const stuck = [];
    for (const host of [a, b]) {
      stuck.push(...killAndWait(namespacePids(host.name)));
      ip(["netns", "del", host.name]);
    }
    const left = ip(["netns", "list"]).stdout ?? "";
    const names = [a.name, b.name].filter((name) => new RegExp(`^${name}( |$)`, "m").test(left));
    if (stuck.length > 0 || names.length > 0) {
      throw new Error(`host pair ${tag} not fully removed: processes ${stuck.join(", ") || "none"} still run, namespaces ${names.join(", ") || "none"} remain`);
    }
  };

  try {
    remove(); // a run killed before its cleanup, with this very tag
  } catch {
    // reported again below if it matters
  }
  try {
    for (const host of [a, b]) ipOrThrow(["netns", "add", host.name]);
    ipOrThrow(["link", "add", a.device, "type", "veth", "peer", "name", b.device]);
    for (const host of [a, b]) {
      ipOrThrow(["link", "set", host.device, "netns", host.name]);
      ipOrThrow(["-n", host.name, "addr", "add", `${host.address}/24`, "dev", host.device]);
      ipOrThrow(["-n", host.name, "link", "set", host.device, "up"]);
      ipOrThrow(["-n", host.name, "link", "set", "lo", "up"]);
    }
  } catch (error) {
    try {
      remove();
    } finally {
      ip(["link", "del", a.device]); // made but not yet moved into a namespace
    }
    throw error;
  }

  return {
    a,
    b,
    /** `argv` prefixed to run inside `host`'s namespace. */
    exec: (host, argv) => [IP, "netns", "exec", host.name, ...argv],
    /** Pids of every process inside either namespace. */
    pids: () => [...namespacePids(a.name), ...namespacePids(b.name)],
    remove,
  };
}

/**
 * The environment for a process in a namespace: this one's, less the proxy variables (gRPC, used
 * by the etcd client, would send a namespace-local address to a proxy it cannot reach), plus `extra`.
 */
export function namespaceEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(https?|grpc|all|no)_proxy$/i.test(name)) delete env[name];
  }
  return { ...env, ...extra };
}
