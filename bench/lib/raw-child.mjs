// Raw performance floor: the child side of a hand-written comlink_ipc_v4 peer.
//
// A zeromq ROUTER connects to the parent's DEALER at tcp://127.0.0.1:$COMLINK_ZMQ_PORT,
// decodes each call map with msgpackr and replies with a plain-map response. No library code.
//
//   call 'add'  -> result args[0] + args[1]
//   call 'echo' -> result args[0]
//   heartbeat   -> echoed back with the same id
//   shutdown    -> close the socket, exit 0
//
// It also exits when its parent dies (process.ppid changes; checked every 500 ms).

import { Router } from 'zeromq';
import { Packr, Unpackr } from 'msgpackr';

const APP = 'comlink_ipc_v4';
const port = Number(process.env.COMLINK_ZMQ_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`raw-child: bad COMLINK_ZMQ_PORT=${process.env.COMLINK_ZMQ_PORT}\n`);
  process.exit(2);
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'auto' });

const router = new Router({ linger: 0 });
router.mandatory = true; // otherwise replies beyond the HWM are silently dropped
router.connect(`tcp://127.0.0.1:${port}`);

let closing = false;

function finish(code) {
  if (closing) return;
  closing = true;
  try {
    router.close();
  } catch {
    // already closed
  }
  process.exit(code);
}

// Parent death: if we were re-parented, the parent is gone.
const originalPpid = process.ppid;
setInterval(() => {
  if (process.ppid !== originalPpid) finish(0);
}, 500).unref();

// Single-writer FIFO send queue: zeromq.js allows only one pending send per socket.
const queue = [];
let pumping = false;

function enqueue(frames) {
  queue.push(frames);
  if (!pumping) void pump();
}

async function pump() {
  pumping = true;
  try {
    while (queue.length > 0 && !closing) {
      const frames = queue.shift();
      try {
        await router.send(frames);
      } catch (err) {
        if (closing) return;
        // EHOSTUNREACH (parent gone with mandatory=true) or similar: drop this reply.
        process.stderr.write(`raw-child: send failed: ${err?.message ?? err}\n`);
      }
    }
  } finally {
    pumping = false;
  }
}

function reply(identity, empty, map) {
  enqueue([identity, empty, packr.pack(map)]);
}

function handle(identity, empty, payload) {
  let msg;
  try {
    msg = unpackr.unpack(payload);
  } catch {
    return; // malformed frame: ignore
  }
  if (msg === null || typeof msg !== 'object') return;

  switch (msg.type) {
    case 'call': {
      const args = Array.isArray(msg.args) ? msg.args : [];
      if (msg.function === 'add') {
        reply(identity, empty, { app: APP, id: msg.id, type: 'response', timestamp: Date.now() / 1000, result: args[0] + args[1] });
      } else if (msg.function === 'echo') {
        reply(identity, empty, { app: APP, id: msg.id, type: 'response', timestamp: Date.now() / 1000, result: args[0] });
      } else {
        reply(identity, empty, {
          app: APP,
          id: msg.id,
          type: 'error',
          timestamp: Date.now() / 1000,
          error: `unknown function ${String(msg.function)}`,
        });
      }
      return;
    }
    case 'heartbeat':
      reply(identity, empty, { app: APP, id: msg.id, type: 'heartbeat', timestamp: Date.now() / 1000 });
      return;
    case 'shutdown':
      finish(0);
      return;
    default:
      return;
  }
}

async function receiveLoop() {
  while (!closing) {
    let frames;
    try {
      frames = await router.receive();
    } catch (err) {
      if (closing) return;
      process.stderr.write(`raw-child: receive failed: ${err?.message ?? err}\n`);
      finish(1);
      return;
    }
    // ROUTER: [identity, empty delimiter, payload]
    if (frames.length < 3) continue;
    handle(frames[0], frames[1], frames[2]);
  }
}

void receiveLoop();
