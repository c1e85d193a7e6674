// Benchmark child for bench/streaming.mjs: the same N values as one stream or as N calls, from
// one ChildWorker (imports the lean entry, multifrost/child, as bench/workers/echo-worker.mjs does).
//
//   count(n, bytes)  -> yields n values: i, or a Buffer of `bytes` bytes when bytes > 0
//   value(i, bytes)  -> the same value, one per call

import { ChildWorker } from "multifrost/child";

const payloads = new Map();
/** One Buffer per size, made once: the bench measures the transport, not allocation. */
const payload = (bytes) => {
  let buffer = payloads.get(bytes);
  if (buffer === undefined) payloads.set(bytes, (buffer = Buffer.alloc(bytes, 7)));
  return buffer;
};

class StreamBenchWorker extends ChildWorker {
  async *count(n, bytes = 0) {
    const big = bytes > 0 ? payload(bytes) : undefined;
    for (let i = 0; i < n; i++) yield big ?? i;
  }

  value(i, bytes = 0) {
    return bytes > 0 ? payload(bytes) : i;
  }
}

await new StreamBenchWorker().run();
