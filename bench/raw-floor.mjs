// The raw-ZeroMQ performance floor, alone: a hand-written comlink_ipc_v4 client (DEALER +
// msgpackr plain maps) against a hand-written child (ROUTER), no Multifrost code.
//
//   node bench/raw-floor.mjs [--quick]
//
// Prints sequential latency p50/p99/mean (µs), pipelined calls/s at 1, 10, 100 and 1000 in
// flight, and spawn → first answered call (ms, median of N cold starts).

import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startRawPeer } from './lib/raw-parent.mjs';
import { sequentialLatency, pipelinedRate, median, formatTable } from './lib/measure.mjs';

const quick = process.argv.includes('--quick');
const cfg = quick
  ? { warmup: 300, iterations: 2000, windowMs: 1000, warmupMs: 300, coldStarts: 3 }
  : { warmup: 2000, iterations: 10000, windowMs: 2000, warmupMs: 300, coldStarts: 10 };
const IN_FLIGHT = [1, 10, 100, 1000];

// Ctrl-C / kill: exit; raw-parent's 'exit' hook SIGKILLs every live child's process group.
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

async function coldStart() {
  const t0 = performance.now();
  const peer = await startRawPeer(undefined, { ready: false }); // bind + spawn, no readiness wait
  try {
    const result = await peer.call('add', [1, 2]); // queued in the DEALER until the child connects
    const ms = performance.now() - t0;
    if (result !== 3) throw new Error(`cold start: add(1, 2) returned ${result}`);
    return ms;
  } finally {
    await peer.stop();
  }
}

async function main() {
  const started = performance.now();
  console.log(
    `# raw zeromq floor${quick ? ' (--quick)' : ''}\n\n` +
      `node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ` +
      `sequential: ${cfg.warmup} warm-up + ${cfg.iterations} timed; pipelined window ${cfg.windowMs} ms; ${cfg.coldStarts} cold starts\n`,
  );

  const rows = [];
  const peer = await startRawPeer();
  try {
    const add = () => peer.call('add', [1, 2]);
    const sum = await add();
    const echoed = await peer.call('echo', ['hi']);
    if (sum !== 3 || echoed !== 'hi') throw new Error(`sanity check failed: add → ${sum}, echo → ${echoed}`);

    const lat = await sequentialLatency(add, { warmup: cfg.warmup, iterations: cfg.iterations });
    rows.push({ metric: 'sequential RTT p50', value: lat.p50, unit: 'µs' });
    rows.push({ metric: 'sequential RTT p99', value: lat.p99, unit: 'µs' });
    rows.push({ metric: 'sequential RTT mean', value: lat.mean, unit: 'µs' });

    for (const inFlight of IN_FLIGHT) {
      const rate = await pipelinedRate(add, { inFlight, windowMs: cfg.windowMs, warmupMs: cfg.warmupMs });
      rows.push({ metric: `pipelined, ${inFlight} in flight`, value: Math.round(rate), unit: 'calls/s' });
    }
  } finally {
    await peer.stop();
  }

  const colds = [];
  for (let i = 0; i < cfg.coldStarts; i++) colds.push(await coldStart());
  const sorted = [...colds].sort((a, b) => a - b);
  rows.push({
    metric: `spawn → first answered call (median of ${colds.length})`,
    value: median(colds),
    unit: `ms (min ${sorted[0].toFixed(1)}, max ${sorted[sorted.length - 1].toFixed(1)})`,
  });

  console.log(formatTable(rows, [{ key: 'metric' }, { key: 'value', align: 'right' }, { key: 'unit' }]));
  console.log(`\n(total ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (err) => {
    console.error(err?.stack ?? err);
    process.exit(1); // 'exit' hook in raw-parent kills any child still alive
  },
);
