"""A minimal comlink_ipc_v4 child for Python workers (spawn mode), for the examples.

Subclass ChildWorker, add methods, call run(). Needs pyzmq and msgpack (Debian: python3-zmq,
python3-msgpack). Public methods are callable; names starting with "_" are refused. Heartbeats
are answered, `shutdown`/SIGTERM/SIGINT stop the loop, and the worker exits if its parent dies.
"""

import os
import signal
import sys
import time
import traceback

import msgpack
import zmq

APP = "comlink_ipc_v4"


class _Stop(BaseException):
    pass


class ChildWorker:
    namespace = "default"

    def list_functions(self):
        return sorted(
            name for name in dir(type(self))
            if not name.startswith("_") and callable(getattr(self, name))
            and name not in ("run", "list_functions")
        )

    def run(self):
        port = os.environ.get("COMLINK_ZMQ_PORT", "")
        if not port.isdigit() or not 1024 <= int(port) <= 65535:
            print(f"FATAL: invalid COMLINK_ZMQ_PORT {port!r}", file=sys.stderr)
            sys.exit(1)
        parent = os.getppid()

        def stop(_signum, _frame):
            raise _Stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 500)
        sock.connect(f"tcp://127.0.0.1:{port}")
        try:
            while os.getppid() == parent:
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart()
                reply = self._handle(frames[-1])
                if reply is not None:
                    sock.send_multipart(frames[:-1] + [msgpack.packb(reply, use_bin_type=True)])
        except _Stop:
            pass
        finally:
            sock.close()
            context.term()

    def _handle(self, payload):
        try:
            message = msgpack.unpackb(payload, raw=False)
        except Exception:
            return None
        if not isinstance(message, dict) or message.get("app") != APP:
            return None
        kind, msg_id = message.get("type"), message.get("id")
        if kind == "shutdown":
            raise _Stop()
        if kind == "heartbeat" and msg_id:
            metadata = message.get("metadata") or {}
            return self._message("heartbeat", msg_id, metadata={**metadata, "hb_response": True})
        if kind != "call" or not msg_id or message.get("namespace", "default") != self.namespace:
            return None
        name = message.get("function") or ""
        if name.startswith("_") or name not in self.list_functions() + ["list_functions"]:
            return self._message("error", msg_id, error=f"AttributeError: Function '{name}' not found")
        try:
            return self._message("response", msg_id, result=getattr(self, name)(*message.get("args", [])))
        except Exception as exc:
            return self._message("error", msg_id, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")

    @staticmethod
    def _message(kind, msg_id, **fields):
        return {"app": APP, "id": msg_id, "type": kind, "timestamp": time.time(), **fields}
