// Which half costs what: pipelined add(1, 2) at 100 in flight for every pairing of our parent /
// the raw parent with our child / the raw child, interleaved over rounds (npm run build first).
//   node bench/halves.mjs [--rounds=3] [--calls=40000]
import { fileURLToPath } from "node:url";
import { ECHO_WORKER, startOurPeer } from "./lib/our-peer.mjs";
import { startRawPeer } from "./lib/raw-parent.mjs";
import { fixedCountRate, median } from "./lib/measure.mjs";

const option = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const ROUNDS = option("rounds", 3);
const CALLS = option("calls", 40_000);
const IN_FLIGHT = 100;
const CHILD = {
  raw: fileURLToPath(new URL("./lib/raw-child.mjs", import.meta.url)),
  ours: ECHO_WORKER,
};

async function startPair(parent, child) {
  if (parent === "raw") {
    const peer = await startRawPeer(CHILD[child]);
    return { add: () => peer.call("add", [1, 2]), stop: () => peer.stop() };
  }
  return startOurPeer(CHILD[child]); // its add() is handle.call.add(1, 2)
}

async function rate(pair) {
  for (let i = 0; i < 3000; i++) await pair.add();
  return fixedCountRate(pair.add, { calls: CALLS, inFlight: IN_FLIGHT });
}

const pairings = [["raw", "raw"], ["ours", "raw"], ["raw", "ours"], ["ours", "ours"]];
const rates = new Map(pairings.map(([p, c]) => [`${p} parent + ${c} child`, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [parent, child] of pairings) {
    const pair = await startPair(parent, child);
    try {
      rates.get(`${parent} parent + ${child} child`).push(await rate(pair));
    } finally {
      await pair.stop();
    }
  }
}
const floor = median(rates.get("raw parent + raw child"));
console.log(`| pairing (${CALLS} calls, ${IN_FLIGHT} in flight, ${ROUNDS} rounds) | median calls/s | per round | vs raw+raw |`);
console.log("|---|---:|---|---:|");
for (const [name, values] of rates) {
  const m = median(values);
  console.log(`| ${name} | ${Math.round(m)} | ${values.map((v) => Math.round(v)).join(", ")} | ${(m / floor).toFixed(2)} |`);
}
