// The wire codec against msgpackr (npm run build first):
//   node bench/codec.mjs            check, then time
//   node bench/codec.mjs --check    check only (exit code 1 on any difference)
//
// Check: for many values, our encodeMessage and msgpackr (the options the codec used before)
// must encode to maps that decode alike, and our decodeFrame must read both encodings (and
// malformed input) exactly as msgpackr does, including after the decoder has compiled its
// per-shape constructors. Time: ns per encode/decode of a call and a response, ours vs msgpackr
// (best of 12 repetitions; every decode gets a fresh Buffer, as frames from zeromq are).
import { isDeepStrictEqual, inspect } from "node:util";
import { Packr, Unpackr } from "msgpackr";
import { decodeFrame, encodeMessage, createCall, createError, createHeartbeat, createHeartbeatReply, createResponse } from "../dist/wire/index.js";

const refPack = new Packr({ useRecords: false, encodeUndefinedAsNil: true, moreTypes: false });
const refUnpack = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" });
const ID = "0123abcd-12ab-4cde-89ab-0000000000ff";

function check() {
  const values = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 32 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31),
    0.5, -0.0, NaN, Infinity, -Infinity, 1e300, 2 ** 53, 5n, 2n ** 63n - 1n,
    "", "a", "x".repeat(31), "x".repeat(32), "x".repeat(255), "x".repeat(256), "x".repeat(2000), "z".repeat(70), "y".repeat(5000),
    "héllo", "é".repeat(100), "a".repeat(60) + "é", "\ud800",
    true, false, null, undefined, [], [1, [2, [3]]], new Array(20).fill(7), [undefined, , 3],
    {}, { a: 1, b: { c: [1, "z"] } }, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
    { __proto__: null, x: 1 }, JSON.parse('{"__proto__": {"x": 1}}'),
    Buffer.from("abc"), new Date(0), new Map([["a", 1]]),
    Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`key${i}`, "v".repeat(1000)])),
    Array.from({ length: 30 }, (_, i) => ({ [`k${i}`]: "w".repeat(900), n: i })),
  ];
  let differences = 0;
  const report = (what, ...details) => {
    differences++;
    if (differences <= 20) console.log(what, ...details.map((d) => inspect(d, { depth: 4, maxStringLength: 40 })));
  };
  for (let round = 0; round < 3; round++) {
    for (const value of values) {
      const messages = [
        createResponse(ID, value),
        createCall("id-1", "fn", [value, value], "default", "me"),
        createError("e", "Error: x", "stack"),
        createHeartbeat("h1"),
        createHeartbeatReply(createHeartbeat("h2")),
      ];
      for (const message of messages) {
        const ours = encodeMessage(message);
        const theirs = refPack.pack(message);
        if (!isDeepStrictEqual(refUnpack.unpack(ours), refUnpack.unpack(theirs))) report("encode differs:", value);
        for (const bytes of [ours, theirs]) {
          for (let i = 0; i < 6; i++) {
            const mine = decodeFrame(Buffer.from(bytes));
            const reference = refUnpack.unpack(Buffer.from(bytes));
            if (!isDeepStrictEqual(mine, reference)) report("decode differs:", value, mine, reference);
          }
        }
      }
    }
  }
  // Duplicate keys and __proto__ keys at the top level: same values, same key order, plain prototype.
  for (const hex of ["82a16101a16102", "81a95f5f70726f746f5f5f01", "82a95f5f70726f746f5f5f01a16102"]) {
    for (let i = 0; i < 6; i++) {
      const mine = decodeFrame(Buffer.from(hex, "hex"));
      const reference = refUnpack.unpack(Buffer.from(hex, "hex"));
      const sameKeys = JSON.stringify(Object.keys(mine)) === JSON.stringify(Object.keys(reference));
      if (!isDeepStrictEqual(mine, reference) || !sameKeys || Object.getPrototypeOf(mine) !== Object.prototype) report("map differs:", hex);
    }
  }
  // Malformed input: both throw, or neither.
  for (const hex of ["", "c1c1", "81a161", "92", "a5616263", "d9", "de0001", "80ff", "9101", "cb00", "c40501"]) {
    const threw = (fn) => {
      try {
        fn();
        return false;
      } catch {
        return true;
      }
    };
    const mine = threw(() => decodeFrame(Buffer.from(hex, "hex")));
    const reference = threw(() => refUnpack.unpack(Buffer.from(hex, "hex")));
    if (mine !== reference) report("malformed input differs:", hex, mine, reference);
  }
  const call = createCall(ID, "add", [1, 2], "default");
  console.log(
    `codec check: ${differences === 0 ? "ours and msgpackr agree" : `${differences} differences`}; ` +
      `add(1, 2) call ${encodeMessage(call).length} B (msgpackr ${refPack.pack(call).length} B), ` +
      `response ${encodeMessage(createResponse(ID, 3)).length} B (msgpackr ${refPack.pack(createResponse(ID, 3)).length} B)`,
  );
  return differences === 0;
}

function time() {
  const N = 200_000;
  const callBytes = Buffer.from(encodeMessage(createCall(ID, "add", [1, 2], "default")));
  const responseBytes = Buffer.from(encodeMessage(createResponse(ID, 3)));
  const call = createCall(ID, "add", [1, 2], "default");
  const response = createResponse(ID, 3);
  let sink = 0;
  const cases = {
    "encode call": [() => sink += encodeMessage(call).length, () => sink += refPack.pack(call).length],
    "encode response": [() => sink += encodeMessage(response).length, () => sink += refPack.pack(response).length],
    "decode call": [() => sink += decodeFrame(Buffer.from(callBytes)).args.length, () => sink += refUnpack.unpack(Buffer.from(callBytes)).args.length],
    "decode response": [() => sink += decodeFrame(Buffer.from(responseBytes)).result, () => sink += refUnpack.unpack(Buffer.from(responseBytes)).result],
  };
  const best = {};
  for (let rep = 0; rep < 12; rep++) {
    for (const [name, fns] of Object.entries(cases)) {
      fns.forEach((fn, side) => {
        const t0 = performance.now();
        for (let i = 0; i < N; i++) fn();
        const ns = ((performance.now() - t0) * 1e6) / N;
        const key = `${name}|${side}`;
        best[key] = Math.min(best[key] ?? Infinity, ns);
      });
    }
  }
  console.log("| ns per op (best of 12) | ours | msgpackr |\n|---|---:|---:|");
  for (const name of Object.keys(cases)) console.log(`| ${name} | ${best[`${name}|0`].toFixed(0)} | ${best[`${name}|1`].toFixed(0)} |`);
  return sink;
}

const ok = check();
if (!process.argv.includes("--check")) time();
process.exitCode = ok ? 0 : 1;
