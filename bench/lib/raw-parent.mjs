// Raw performance floor: the parent side of a hand-written comlink_ipc_v4 peer.
//
// What a careful hand-written client would do, with no library code: a DEALER bound on
// tcp://127.0.0.1:*, the child spawned with COMLINK_ZMQ_PORT, v4 call maps packed as plain
// msgpack maps, one FIFO single-writer send queue, one receive loop, a Map of pending ids.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Dealer } from 'zeromq';
import { Packr, Unpackr } from 'msgpackr';

const APP = 'comlink_ipc_v4';
const DEFAULT_CHILD = fileURLToPath(new URL('./raw-child.mjs', import.meta.url));
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 2_000;

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'auto' });

// Every child still alive is killed (whole process group) when this process exits,
// including on an uncaught exception or process.exit() from elsewhere.
const livePids = new Set();
process.on('exit', () => {
  for (const pid of livePids) killGroup(pid);
});

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: group already gone
  }
}

/**
 * Start a raw peer: bind a DEALER, spawn `node childScript`, and (by default) wait for a
 * first heartbeat round trip.
 *
 * @param {string} [childScript] path of the child script (default: ./raw-child.mjs)
 * @param {{ ready?: boolean }} [options] ready=false returns right after spawn, without the
 *   heartbeat; calls made at once are queued in the DEALER until the child connects (used to
 *   measure spawn → first answered call).
 * @returns {Promise<{ call(fn: string, args: unknown[]): Promise<unknown>, stop(): Promise<void>, pid: number, endpoint: string }>}
 */
export async function startRawPeer(childScript = DEFAULT_CHILD, { ready = true } = {}) {
  const sock = new Dealer({ linger: 0 });
  let closed = false;
  const closeSocket = () => {
    if (closed) return;
    closed = true;
    try {
      sock.close();
    } catch {
      // already closed
    }
  };

  let endpoint;
  let port;
  try {
    await sock.bind('tcp://127.0.0.1:*');
    endpoint = sock.lastEndpoint;
    port = Number(new URL(endpoint).port);
  } catch (err) {
    closeSocket();
    throw err;
  }

  /** @type {Map<string, {resolve: (v: unknown) => void, reject: (e: Error) => void}>} */
  const pending = new Map();
  let deadError = null; // set once the child is gone or stop() ran

  const failAll = (err) => {
    if (!deadError) deadError = err;
    for (const { reject } of pending.values()) reject(err);
    pending.clear();
    sendQueue.length = 0;
  };

  // ---- child process ----
  let child;
  try {
    child = spawn(process.execPath, [childScript], {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, COMLINK_ZMQ_PORT: String(port) },
    });
  } catch (err) {
    closeSocket();
    throw err;
  }
  const pid = child.pid;
  if (pid === undefined) {
    // spawn failed asynchronously ('error' follows); nothing to reap
    const err = await new Promise((resolve) => child.once('error', resolve));
    closeSocket();
    throw err;
  }
  livePids.add(pid);

  let exited = false;
  const exitPromise = new Promise((resolve) => {
    const onGone = (code, signal) => {
      if (exited) return;
      exited = true;
      livePids.delete(pid);
      killGroup(pid); // anything the child left in its group
      failAll(new Error(`raw child ${pid} exited (code ${code}, signal ${signal})`));
      resolve();
    };
    child.once('exit', onGone);
    child.once('error', (err) => onGone(null, String(err?.message ?? err)));
  });

  // ---- single-writer FIFO send queue ----
  /** @type {{frames: Buffer[], onError?: (e: Error) => void}[]} */
  const sendQueue = [];
  let pumping = false;

  const enqueue = (frames, onError) => {
    sendQueue.push({ frames, onError });
    if (!pumping) void pump();
  };

  async function pump() {
    pumping = true;
    try {
      while (sendQueue.length > 0 && !closed) {
        const item = sendQueue.shift();
        try {
          await sock.send(item.frames);
        } catch (err) {
          item.onError?.(err instanceof Error ? err : new Error(String(err)));
        }
      }
    } finally {
      pumping = false;
    }
  }

  // ---- one receive loop ----
  void (async () => {
    while (!closed) {
      let frames;
      try {
        frames = await sock.receive();
      } catch (err) {
        if (closed) return;
        failAll(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      // DEALER side: [empty delimiter, payload]
      const payload = frames[frames.length - 1];
      let msg;
      try {
        msg = unpackr.unpack(payload);
      } catch {
        continue;
      }
      const entry = msg && pending.get(msg.id);
      if (!entry) continue;
      pending.delete(msg.id);
      if (msg.type === 'response') entry.resolve(msg.result);
      else if (msg.type === 'heartbeat') entry.resolve(msg);
      else entry.reject(new Error(msg.error ? String(msg.error) : `unexpected reply type ${msg.type}`));
    }
  })();

  const EMPTY = Buffer.alloc(0);

  const request = (map) =>
    new Promise((resolve, reject) => {
      if (deadError) {
        reject(deadError);
        return;
      }
      pending.set(map.id, { resolve, reject });
      enqueue([EMPTY, packr.pack(map)], (err) => {
        if (pending.delete(map.id)) reject(err);
      });
    });

  const call = (fn, args) =>
    request({
      app: APP,
      id: randomUUID(),
      type: 'call',
      timestamp: Date.now() / 1000,
      function: fn,
      args,
      namespace: 'default',
    });

  let stopping = null;
  const stop = () => {
    if (stopping) return stopping;
    stopping = (async () => {
      failAll(new Error('raw peer stopped')); // rejects pending calls, drops queued sends
      if (!exited && !closed) {
        enqueue([EMPTY, packr.pack({ app: APP, id: randomUUID(), type: 'shutdown', timestamp: Date.now() / 1000 })]);
      }
      let timer;
      await Promise.race([exitPromise, new Promise((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]);
      clearTimeout(timer);
      killGroup(pid);
      if (!exited) await exitPromise; // SIGKILL always ends it; reaps the child
      closeSocket();
    })();
    return stopping;
  };

  const peer = { call, stop, pid, endpoint };
  if (!ready) return peer;

  // ---- readiness: first heartbeat round trip ----
  let timer;
  try {
    await Promise.race([
      request({ app: APP, id: randomUUID(), type: 'heartbeat', timestamp: Date.now() / 1000 }),
      exitPromise.then(() => {
        throw deadError ?? new Error(`raw child ${pid} exited before it was ready`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`raw child ${pid} not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    clearTimeout(timer);
    await stop();
    throw err;
  }
  clearTimeout(timer);
  return peer;
}
