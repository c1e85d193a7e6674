// Across hosts (issue 14), on one machine: two network namespaces joined by a veth pair
// (test/helpers/netns.mjs) stand for two hosts. A runs etcd and the measuring parent; B runs the
// service instances, bound to and advertising B's veth address, CURVE on.
//
//   discovery   a service registers → a `discover` already waiting on etcd returns: a registrar
//               process on B (across the veth) and one on A (beside etcd), alternating; each
//               registration is timed from just before register() (its etcd put) to discover's
//               answer, the two clocks being the same machine's
//   failover    per round two instances of a fresh id on B, a pool following them and one
//               ParentWorker.connect; kill -9 the instance the ParentWorker is connected to, then
//               time kill → its key gone (registry watch), → the pool's member removed, → the
//               ParentWorker connected again (to the other instance); idempotent pool calls run
//               throughout and must not fail. Bounded by the lease TTL (--ttl, default 3 s).
//   round trip  the same service (test/fixtures/curve-service.mjs, CURVE on for both) on A's
//               loopback and on B across the veth, one connected ParentWorker each; sequential
//               add(1, 2) in alternating slices and 100 in flight in alternating windows
//               (bench/lib/measure.mjs), ratio veth/loopback within each round, median over rounds
//
//   node bench/multihost.mjs [--quick] [--rounds=N] [--ttl=S]
//
// Needs root (network namespaces) and etcd (scripts/setup.sh installs Debian's etcd-server), and
// `npm run build` first; npm run bench runs it. Without root it prints why it is skipped and exits 0.
// The script runs twice: here it makes the namespaces and etcd and removes them whatever happens;
// with --inside it is the measuring parent, started in namespace A.
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ETCD, startTestEtcd } from "../test/helpers/etcd.mjs";
import { createHostPair, killAndWait, namespaceEnv, namespaceSkipReason } from "../test/helpers/netns.mjs";
import { formatTable, interleaved, median, pipelinedRate, ratio, sequentialLatencyInterleaved, startRunRecord } from "./lib/measure.mjs";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const roundsArg = argv.find((a) => a.startsWith("--rounds="));
const ttlArg = argv.find((a) => a.startsWith("--ttl="));
const insideArg = argv.find((a) => a.startsWith("--inside="));
const ROUNDS = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : quick ? 2 : 5;
const TTL_S = ttlArg ? Number(ttlArg.slice("--ttl=".length)) : 3;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`bad ${roundsArg}`);
if (!Number.isInteger(TTL_S) || TTL_S < 2) throw new Error(`bad ${ttlArg} (an integer >= 2)`);
const CONFIG = quick
  ? { discoveries: 5, seq: { warmup: 300, iterations: 2000, slices: 4 }, pipe: { slices: 2, windowMs: 250, warmupMs: 150 } }
  : { discoveries: 20, seq: { warmup: 1000, iterations: 5000, slices: 10 }, pipe: { slices: 4, windowMs: 500, warmupMs: 300 } };
const IN_FLIGHT = 100;
const SELF = fileURLToPath(import.meta.url);
const SERVICE = fileURLToPath(new URL("../test/fixtures/curve-service.mjs", import.meta.url));
const DIST = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const RESULTS = fileURLToPath(new URL("./results/multihost-latest.json", import.meta.url));
const TITLE = "Across hosts (etcd, veth)";
const log = (msg) => process.stderr.write(`[bench:multihost] ${msg}\n`);
const at = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Ctrl-C / kill: exit, and the 'exit' hooks below remove what was made.
for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => process.exit(130));

if (insideArg === undefined) await outside();
else await inside(JSON.parse(insideArg.slice("--inside=".length)));

// ---------------------------------------------------------------------------------------------
// outside: the two hosts and etcd

async function outside() {
  const reason = existsSync(ETCD) ? namespaceSkipReason() : `no etcd at ${ETCD} (scripts/setup.sh installs Debian's etcd-server; MULTIFROST_ETCD names another)`;
  if (reason !== undefined) {
    console.log(`\n### ${TITLE}\n\nskipped: ${reason}`);
    log(`skipped: ${reason}`);
    return;
  }
  const pair = createHostPair({ tag: `b${process.pid}` });
  let etcd;
  const cleanUp = () => {
    try {
      pair.remove(); // etcd and anything the inside left run in the namespaces: killed here
    } catch (error) {
      log(error.message);
      process.exitCode = 1;
    }
    if (etcd !== undefined) rmSync(etcd.dataDir, { recursive: true, force: true });
  };
  process.once("exit", cleanUp);
  try {
    etcd = await startTestEtcd({ host: pair.a.address, wrap: pair.exec(pair.a, []) });
    const config = { a: pair.a, b: pair.b, etcd: etcd.endpoint };
    const command = pair.exec(pair.a, [process.execPath, SELF, `--inside=${JSON.stringify(config)}`, ...argv]);
    const code = await new Promise((resolve, reject) => {
      const child = spawn(command[0], command.slice(1), { stdio: "inherit", env: namespaceEnv() });
      child.once("error", reject);
      child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
    });
    if (code !== 0) throw new Error(`the measuring side exited with ${code}`);
  } finally {
    process.removeListener("exit", cleanUp);
    cleanUp();
  }
}

// ---------------------------------------------------------------------------------------------
// inside: the measuring parent, in namespace A

async function inside({ a, b, etcd }) {
  const { closeOpenedRegistries, curveKeyPair, openRegistry, ParentWorker, pool, supervise } = await import(DIST);
  const url = `etcd://${etcd}/bench-${process.pid}/?ttl=${TTL_S}`;
  const registry = openRegistry(url);
  const server = curveKeyPair();
  const client = curveKeyPair();
  const children = [];
  process.once("exit", () => killAndWait(children.map((child) => child.pid)));

  /** A process on host B (through `ip netns exec`) or here on A; killed at exit. */
  const start = (host, args, env, stdio = ["ignore", "ignore", "inherit"]) => {
    const command = host === "b" ? ["ip", "netns", "exec", b.name, process.execPath, ...args] : [process.execPath, ...args];
    const child = spawn(command[0], command.slice(1), { env: namespaceEnv({ MULTIFROST_REGISTRY: url, ...env }), stdio });
    children.push(child);
    return child;
  };

  /** Resolves once an instance of `id` with this pid is registered. */
  const registered = (id, pid, timeoutMs = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        unwatch();
        reject(new Error(`${id} (pid ${pid}) did not register within ${timeoutMs} ms`));
      }, timeoutMs);
      const unwatch = registry.watch(id, (entries) => {
        if (!entries.some((entry) => entry.pid === pid)) return;
        clearTimeout(timer);
        queueMicrotask(unwatch);
        resolve();
      });
    });

  /** The CURVE service on B (bound to and advertising its veth address) or on A's loopback. */
  const startService = async (id, host) => {
    const child = start(host, [SERVICE], {
      MF_SERVICE_ID: id,
      MF_CURVE_PUBLIC: server.publicKey,
      MF_CURVE_SECRET: server.secretKey,
      MF_AUTHORIZED: client.publicKey,
      ...(host === "b" ? { MF_HOST: b.address, MF_ADVERTISE: b.address } : {}),
    });
    await registered(id, child.pid);
    return child;
  };

  const kill = async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };

  const connect = async (id) => {
    const worker = await ParentWorker.connect(id, 10_000, { registry: url, curve: client, onOutput() {} });
    await worker.start();
    return worker;
  };

  const record = startRunRecord({ quick, rounds: ROUNDS });
  const roundLoad = [];
  try {
    log(`${quick ? "quick" : "full"} run: TTL ${TTL_S} s, ${ROUNDS} rounds, ${CONFIG.discoveries} discoveries per registrar; A ${a.address}, B ${b.address}`);
    const discovery = await measureDiscovery();
    const failover = [];
    for (let round = 0; round < ROUNDS; round++) {
      roundLoad.push(loadavg()[0]);
      log(`failover round ${round + 1}/${ROUNDS}`);
      failover.push(await measureFailover(round));
    }
    log("round trip: loopback vs veth");
    const roundTrip = await measureRoundTrip();
    const file = record.finish(RESULTS, roundLoad, { config: { ...CONFIG, ttlSeconds: TTL_S, inFlight: IN_FLIGHT, a, b }, discovery, failover, roundTrip });
    report(record.meta, discovery, failover, roundTrip);
    log(`raw data: ${file}`);
  } finally {
    await Promise.all(children.map(kill));
    await closeOpenedRegistries();
  }

  /** register → waiting discover, registrars on B and on A alternating. */
  async function measureDiscovery() {
    const REGISTRAR = `
      import { openRegistry } from ${JSON.stringify(DIST)};
      import { createInterface } from "node:readline";
      const registry = openRegistry(process.env.MULTIFROST_REGISTRY);
      const at = () => performance.timeOrigin + performance.now();
      await registry.list(); // the etcd client connects now, not inside the first timed put
      createInterface({ input: process.stdin }).on("line", async (line) => {
        const [op, id] = line.split(" ");
        if (op === "unregister") {
          await registry.unregister(id);
          console.log("{}");
          return;
        }
        const t0 = at();
        await registry.register(id, 4000, process.pid, { host: process.env.MF_ADVERTISE });
        console.log(JSON.stringify({ t0, t1: at() }));
      });
      console.log("{}");`;
    const registrars = {};
    for (const [name, host, address] of [["B, across the veth", "b", b.address], ["A, beside etcd", "a", a.address]]) {
      const child = start(host, ["--input-type=module", "-e", REGISTRAR], { MF_ADVERTISE: address }, ["pipe", "pipe", "inherit"]);
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      await lines.next(); // ready
      registrars[name] = { child, next: async () => JSON.parse((await lines.next()).value) };
    }
    const samples = Object.fromEntries(Object.keys(registrars).map((name) => [name, { total: [], put: [] }]));
    let serial = 0;
    for (let i = 0; i < CONFIG.discoveries; i++) {
      const names = Object.keys(registrars);
      for (const name of i % 2 === 0 ? names : names.reverse()) {
        const id = `disc-${++serial}`;
        const found = registry.discover(id, 10_000).then(() => at());
        await sleep(200); // discover has read, found nothing and placed its watch
        registrars[name].child.stdin.write(`register ${id}\n`);
        const { t0, t1 } = await registrars[name].next();
        samples[name].total.push((await found) - t0);
        samples[name].put.push(t1 - t0);
        registrars[name].child.stdin.write(`unregister ${id}\n`); // only now: the watch reads after the put
        await registrars[name].next();
      }
    }
    for (const { child } of Object.values(registrars)) await kill(child);
    return samples;
  }

  /** kill -9 the instance a ParentWorker is connected to; when is it gone, removed, replaced? */
  async function measureFailover(round) {
    const id = `failover-${round}`;
    const instances = [await startService(id, "b"), await startService(id, "b")];
    const tree = supervise({ id: "root", children: [pool({ id: "math", service: id, select: "least-busy", idempotent: true, curve: client, onOutput() {} })] }, { registry: url });
    await tree.start();
    const members = tree.pool("math");
    const worker = await connect(id);
    const deadline = Date.now() + 10_000;
    while (!(members.instances.length === 2 && members.workers.every((w) => w.state === "connected"))) {
      if (Date.now() > deadline) throw new Error(`${id}: the pool did not get both members`);
      await sleep(10);
    }
    const victimPid = await worker.call.pid();
    const victim = instances.find((child) => child.pid === victimPid);
    const survivor = instances.find((child) => child !== victim);

    let failed = 0;
    let done = 0;
    let running = true;
    const load = Promise.all(
      [0, 1].map(async () => {
        while (running) {
          await tree
            .get("math")
            .call.slowPid(10)
            .then(() => done++, () => failed++);
        }
      }),
    );
    await sleep(200);
    const times = {};
    let killedAt = 0;
    const unwatch = registry.watch(id, (entries) => {
      if (killedAt > 0 && !entries.some((entry) => entry.pid === victimPid)) times.leaseGone ??= at() - killedAt;
    });
    worker.on("state", (change) => {
      if (killedAt > 0 && change.to === "connected") times.reconnected ??= at() - killedAt;
    });
    killedAt = at();
    victim.kill("SIGKILL");
    const until = Date.now() + TTL_S * 1000 + 10_000;
    while (times.leaseGone === undefined || times.reconnected === undefined || times.memberRemoved === undefined) {
      if (members.instances.length === 1) times.memberRemoved ??= at() - killedAt;
      if (Date.now() > until) throw new Error(`${id}: no failover within TTL + 10 s (${JSON.stringify(times)})`);
      await sleep(5);
    }
    const answeredBy = await worker.call.pid();
    if (answeredBy !== survivor.pid) throw new Error(`${id}: after the failover pid() answered by ${answeredBy}, not the survivor ${survivor.pid}`);
    const doneAtFailover = done;
    while (done < doneAtFailover + 20) {
      if (Date.now() > until) throw new Error(`${id}: pool calls did not resume after the failover (${failed} failed)`);
      await sleep(5);
    }
    running = false;
    await load;
    unwatch();
    await worker.stop();
    await tree.stop();
    await Promise.all(instances.map(kill));
    return { ...times, failed, done };
  }

  /** The same CURVE service on A's loopback and on B across the veth, side by side. */
  async function measureRoundTrip() {
    await startService("rt-loopback", "a");
    await startService("rt-veth", "b");
    const workers = { loopback: await connect("rt-loopback"), veth: await connect("rt-veth") };
    const calls = Object.fromEntries(Object.entries(workers).map(([name, worker]) => [name, () => worker.call.add(1, 2)]));
    for (const [name, call] of Object.entries(calls)) {
      if ((await call()) !== 3) throw new Error(`${name}: add(1, 2) did not return 3`);
    }
    const rounds = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        log(`round trip round ${round + 1}/${ROUNDS}`);
        const order = round % 2 === 0 ? ["loopback", "veth"] : ["veth", "loopback"];
        const subjects = Object.fromEntries(order.map((name) => [name, calls[name]]));
        const seq = await sequentialLatencyInterleaved(subjects, CONFIG.seq);
        const { slices, windowMs, warmupMs } = CONFIG.pipe;
        const rates = await interleaved(slices, subjects, (call) => pipelinedRate(call, { inFlight: IN_FLIGHT, windowMs, warmupMs }));
        const pipelined = Object.fromEntries(order.map((name) => [name, rates[name].reduce((x, y) => x + y, 0) / rates[name].length]));
        rounds.push({ order, seq, pipelined });
      }
    } finally {
      await Promise.all(Object.values(workers).map((worker) => worker.stop()));
    }
    return rounds;
  }
}

// ---------------------------------------------------------------------------------------------
// report

function report(meta, discovery, failover, roundTrip) {
  const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : "-");
  const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : "-");
  const int = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "-");
  const load = (values) => values.map(f2).join(" / ");
  const lines = [];
  lines.push(`\n### ${TITLE}: two network namespaces on this machine (TTL ${TTL_S} s, ${ROUNDS} rounds${quick ? ", --quick" : ""})\n`);
  lines.push(`${meta.date} · node ${meta.node} · ${meta.cpus} CPUs (${meta.cpuModel}) · load average ${load(meta.loadavgStart)} at start, ${load(meta.loadavgEnd)} at end (1/5/15 min)\n`);

  lines.push(`Discovery: register() on one host → a discover() already waiting on etcd in A returns (ms, ${CONFIG.discoveries} each, alternating)\n`);
  lines.push(
    formatTable(
      Object.entries(discovery).map(([name, { total, put }]) => ({
        registrar: name,
        p50: f1(median(total)),
        min: f1(Math.min(...total)),
        max: f1(Math.max(...total)),
        put: f1(median(put)),
      })),
      [
        { key: "registrar", label: "registering process on" },
        { key: "p50", label: "register → discovered, median", align: "right" },
        { key: "min", label: "min", align: "right" },
        { key: "max", label: "max", align: "right" },
        { key: "put", label: "the put alone, median", align: "right" },
      ],
    ),
  );

  lines.push(`\nFailover after kill -9 of the instance a ParentWorker is connected to (ms after the kill; lease TTL ${TTL_S} s, kept alive every ${f1(TTL_S / 3)} s)\n`);
  const failRow = (what, key) => {
    const values = failover.map((round) => round[key]);
    return { what, per: values.map(int).join(", "), median: int(median(values)), min: int(Math.min(...values)), max: int(Math.max(...values)) };
  };
  lines.push(
    formatTable(
      [
        failRow("its key gone from etcd (registry watch)", "leaseGone"),
        failRow("the pool's member removed", "memberRemoved"),
        failRow("the ParentWorker connected again, to the other instance", "reconnected"),
      ],
      [
        { key: "what", label: "" },
        { key: "median", label: "median", align: "right" },
        { key: "min", label: "min", align: "right" },
        { key: "max", label: "max", align: "right" },
        { key: "per", label: "per round" },
      ],
    ),
  );
  const failed = failover.reduce((sum, round) => sum + round.failed, 0);
  const done = failover.reduce((sum, round) => sum + round.done, 0);
  lines.push(`\nIdempotent pool calls during the failovers (2 loops of slowPid(10)): ${done} answered, ${failed} failed.`);

  lines.push(`\nCall round trip, the same CURVE service on A's loopback vs on B across the veth (one connected ParentWorker each)\n`);
  const rtRow = (what, get, fmt) => {
    const ratios = roundTrip.map((round) => ratio(get(round, "veth"), get(round, "loopback")));
    return {
      what,
      loopback: fmt(median(roundTrip.map((round) => get(round, "loopback")))),
      veth: fmt(median(roundTrip.map((round) => get(round, "veth")))),
      ratio: f2(median(ratios)),
      per: ratios.map(f2).join(", "),
    };
  };
  lines.push(
    formatTable(
      [
        rtRow("sequential add(1, 2), p50 µs", (r, n) => r.seq[n].p50, f1),
        rtRow("sequential add(1, 2), p99 µs", (r, n) => r.seq[n].p99, f1),
        rtRow(`add(1, 2), ${IN_FLIGHT} in flight, calls/s`, (r, n) => r.pipelined[n], int),
      ],
      [
        { key: "what", label: "" },
        { key: "loopback", label: "loopback (A)", align: "right" },
        { key: "veth", label: "veth (A → B)", align: "right" },
        { key: "ratio", label: "veth/loopback", align: "right" },
        { key: "per", label: "per-round ratios" },
      ],
    ),
  );
  lines.push(
    `\nSequential: ${CONFIG.seq.warmup} warm-up + ${CONFIG.seq.iterations} timed calls in ${CONFIG.seq.slices} alternating slices per subject; ` +
      `${IN_FLIGHT} in flight: ${CONFIG.pipe.slices} alternating ${CONFIG.pipe.windowMs} ms windows per subject; medians over ${ROUNDS} rounds, ratios within a round.`,
  );
  console.log(lines.join("\n"));
}
