import os from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
// Generic measuring helpers for the benchmark harness. `callOnce` is any () => Promise.

import { performance } from 'node:perf_hooks';

/**
 * Value at percentile p (0-100) of an ascending-sorted array, linear interpolation between
 * the closest ranks. NaN for an empty array.
 * @param {ArrayLike<number>} sorted
 * @param {number} p percent, 0..100
 */
export function percentile(sorted, p) {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (n === 1) return sorted[0];
  const rank = (Math.min(Math.max(p, 0), 100) / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** Median of an unsorted list of numbers (NaN for an empty list). */
export function median(values) {
  return percentile(Float64Array.from(values).sort(), 50);
}

/** a / b (NaN if either is not a finite number or b is 0). */
export function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** Times `count` calls one at a time into samples[from…], in µs. */
async function timeCalls(callOnce, samples, from, count) {
  for (let i = from; i < from + count; i++) {
    const t0 = performance.now();
    await callOnce();
    samples[i] = (performance.now() - t0) * 1000;
  }
}

function latencyStats(samples) {
  samples.sort();
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i];
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), mean: samples.length ? sum / samples.length : NaN };
}

/**
 * Sequential latency: `warmup` untimed calls, then `iterations` calls each timed alone.
 * @param {() => Promise<unknown>} callOnce
 * @returns {Promise<{p50: number, p99: number, mean: number}>} microseconds
 */
export async function sequentialLatency(callOnce, { warmup = 2000, iterations = 10000 } = {}) {
  for (let i = 0; i < warmup; i++) await callOnce();
  const samples = new Float64Array(iterations);
  await timeCalls(callOnce, samples, 0, iterations);
  return latencyStats(samples);
}

/**
 * Sequential latency of several subjects side by side: each warms up, then the timed calls are
 * cut into `slices` runs that alternate between the subjects (a, b, a, b…), so a drift in the
 * machine lands on every subject alike instead of on whichever ran second.
 * @param {Record<string, () => Promise<unknown>>} callsByName
 * @returns {Promise<Record<string, {p50: number, p99: number, mean: number}>>} microseconds
 */
export async function sequentialLatencyInterleaved(callsByName, { warmup = 2000, iterations = 10000, slices = 10 } = {}) {
  const names = Object.keys(callsByName);
  for (const name of names) for (let i = 0; i < warmup; i++) await callsByName[name]();
  const samples = Object.fromEntries(names.map((name) => [name, new Float64Array(iterations)]));
  const perSlice = Math.ceil(iterations / slices);
  for (let from = 0; from < iterations; from += perSlice) {
    const count = Math.min(perSlice, iterations - from);
    for (const name of names) await timeCalls(callsByName[name], samples[name], from, count);
  }
  return Object.fromEntries(names.map((name) => [name, latencyStats(samples[name])]));
}

/**
 * Pipelined throughput: `inFlight` async loops each `await callOnce()` back to back. The window
 * opens once warm-up is over (≥ warmupMs elapsed and ≥ 2×inFlight completions), counts the
 * completions that land inside [open, open + windowMs), and the loops stop after it closes
 * (they keep running across both edges). A rejected call stops all loops and is rethrown.
 * @param {() => Promise<unknown>} callOnce
 * @returns {Promise<number>} completed calls per second
 */
export async function pipelinedRate(callOnce, { inFlight, windowMs = 2000, warmupMs = 300 } = {}) {
  if (!Number.isInteger(inFlight) || inFlight < 1) throw new TypeError(`inFlight must be a positive integer, got ${inFlight}`);
  const start = performance.now();
  const minWarmupCompletions = 2 * inFlight;
  let completions = 0;
  let windowStart = -1; // < 0: still warming up
  let windowEnd = Infinity;
  let inWindow = 0;
  let done = false;
  let failure = null;

  const loop = async () => {
    while (!done) {
      try {
        await callOnce();
      } catch (err) {
        if (!failure) failure = err;
        done = true;
        return;
      }
      const now = performance.now();
      completions++;
      if (windowStart < 0) {
        if (now - start >= warmupMs && completions >= minWarmupCompletions) {
          windowStart = now;
          windowEnd = now + windowMs;
        }
      } else if (now < windowEnd) {
        inWindow++;
      } else {
        done = true;
      }
    }
  };

  const loops = [];
  for (let i = 0; i < inFlight; i++) loops.push(loop());
  await Promise.all(loops);
  if (failure) throw failure;
  return inWindow / (windowMs / 1000);
}

/**
 * Pipelined throughput over a fixed number of calls (for profiling, where the whole run is the
 * window): `inFlight` async loops share `calls` calls; `onDone` runs after each completes.
 * @param {() => Promise<unknown>} callOnce
 * @returns {Promise<number>} calls per second
 */
export async function fixedCountRate(callOnce, { calls, inFlight, onDone }) {
  let issued = 0;
  const started = performance.now();
  const loop = async () => {
    while (issued < calls) {
      issued++;
      await callOnce();
      onDone?.();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  return (calls / (performance.now() - started)) * 1000;
}

/**
 * Run measureFn(subject) for every subject, round-robin, `rounds` times, so drift hits every
 * subject alike. `subjects` is an array (result: array of per-subject result arrays, same order)
 * or a plain object keyed by name (result: object of per-subject result arrays, same keys).
 * measureFn gets (subject, { round, key }) where key is the index or the name.
 */
export async function interleaved(rounds, subjects, measureFn) {
  const isArray = Array.isArray(subjects);
  const keys = isArray ? subjects.map((_, i) => i) : Object.keys(subjects);
  const out = isArray ? subjects.map(() => []) : Object.fromEntries(keys.map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const key of keys) {
      out[key].push(await measureFn(subjects[key], { round, key }));
    }
  }
  return out;
}

function defaultFormat(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '-';
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }
  return String(v);
}

/**
 * Render rows as a Markdown table.
 * @param {Record<string, unknown>[]} rows
 * @param {(string | {key: string, label?: string, format?: (v: unknown, row: object) => string, align?: 'left'|'right'})[]} columns
 * @returns {string}
 */
export function formatTable(rows, columns) {
  const cols = columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  const esc = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const header = `| ${cols.map((c) => esc(c.label ?? c.key)).join(' | ')} |`;
  const rule = `|${cols.map((c) => (c.align === 'right' ? '---:' : '---')).join('|')}|`;
  const body = rows.map(
    (row) => `| ${cols.map((c) => esc((c.format ?? defaultFormat)(row[c.key], row))).join(' | ')} |`,
  );
  return [header, rule, ...body].join('\n');
}

/**
 * A bench run's record: `meta` starts as the machine, the options and the load now; `finish`
 * adds the load at the end, the 1-min load at the start of each round and the wall time, then
 * writes `{ meta, ...data }` as JSON to `file` and returns its path.
 */
export function startRunRecord({ quick, rounds }) {
  const started = performance.now();
  const meta = { ...machineMeta(), quick, rounds };
  const finish = (file, roundLoad, data) => {
    meta.loadavgEnd = os.loadavg();
    meta.roundLoad = roundLoad;
    meta.wallSeconds = (performance.now() - started) / 1000;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ meta, ...data }, null, 2) + "\n");
    return file;
  };
  return { meta, finish };
}

/** Where and when a bench ran: recorded with every result, since these machines are noisy. */
export function machineMeta() {
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model?.trim() ?? "?",
    totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    loadavgStart: os.loadavg(),
  };
}
