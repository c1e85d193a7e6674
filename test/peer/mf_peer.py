#!/usr/bin/python3
"""Standalone Python test peer for the ``comlink_ipc_v4`` wire (ZeroMQ + msgpack).

Written from the protocol spec and the notes about the real Python v4 implementation;
it exists so the TypeScript Multifrost tests can talk to a non-TypeScript process.

Two roles, chosen by the first argument:

``child``  -- a worker that behaves like the real Python v4 ``ChildWorker``:
    mf_peer.py child [--namespace NS] [--bind [--register ID] [--registry-dir DIR]]
    Spawn mode (default): connect a ROUTER to tcp://127.0.0.1:$COMLINK_ZMQ_PORT.
    ``--bind``: bind a ROUTER on tcp://127.0.0.1:* and print ``PORT <n>`` on stdout;
    with ``--register ID`` it first registers ID in the registry the way Python v4 does
    (``services.lock`` taken exclusively, services.json replaced via rename) and
    unregisters on exit.
    Serves add, multiply, echo, type_of, echo_many, fail, none, sleep, big_ints,
    get_info, nested, count_bytes and list_functions (plus an unreachable _private).

``connect`` -- the same cases (but ``shutdown``) against a registered service:
    mf_peer.py connect --service ID [--registry-dir DIR]

``parent`` -- a controller that behaves like the real Python v4 ``ParentWorker`` in spawn
    mode, spawns a (TypeScript) worker and runs a fixed list of interop cases against it:
    mf_peer.py parent --exec EXE [--exec-arg ARG ...] --script PATH [--timeout S]
    Prints one JSON line per case and a final ``{"done": true, ...}`` line;
    exits 0 when every case passed, 1 otherwise.
    A hidden ``--script-arg ARG`` appends arguments after the script (self-test:
    ``parent --exec /usr/bin/python3 --script mf_peer.py --script-arg child``).

Run it with /usr/bin/python3 (needs pyzmq and msgpack); only 127.0.0.1 is ever used.
"""

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import msgpack
import zmq

APP = "comlink_ipc_v4"
TICK_MS = 100  # receive poll interval, like the real Python child's RCVTIMEO
CHILD_LINGER_MS = 100

# Unpack limits used by the real Python v4 implementation (larger messages are dropped).
MAX_STR_OR_BIN = 10 * 1024 * 1024
MAX_ARRAY_OR_MAP = 100_000


# ---------------------------------------------------------------------------------------
# Shared message helpers
# ---------------------------------------------------------------------------------------

def pack(message):
    """Encode a message like Python v4: drop top-level None values, bin for bytes."""
    filtered = {key: value for key, value in message.items() if value is not None}
    return msgpack.packb(filtered, use_bin_type=True)


def unpack(payload):
    """Decode a payload like Python v4; return the dict, or None when it must be dropped.

    ``strict_map_key`` stays at its default (True), so any non-str map key anywhere makes
    the whole message undecodable -- exactly the real implementation's behaviour.
    """
    try:
        message = msgpack.unpackb(
            payload,
            raw=False,
            max_str_len=MAX_STR_OR_BIN,
            max_bin_len=MAX_STR_OR_BIN,
            max_array_len=MAX_ARRAY_OR_MAP,
            max_map_len=MAX_ARRAY_OR_MAP,
        )
    except Exception:
        return None
    if not isinstance(message, dict) or message.get("app") != APP:
        return None
    return message


def new_message(msg_type, msg_id=None, **fields):
    """Build a message with the four core fields plus ``fields``."""
    message = {
        "app": APP,
        "id": msg_id if msg_id is not None else str(uuid.uuid4()),
        "type": msg_type,
        "timestamp": time.time(),
    }
    message.update(fields)
    return message


def is_nonempty_str(value):
    return isinstance(value, str) and value != ""


# ---------------------------------------------------------------------------------------
# Child role
# ---------------------------------------------------------------------------------------

class StopChild(BaseException):
    """Raised (from signal handlers or on parent death) to leave the child loop.

    Derives from BaseException so a running worker function cannot swallow it.
    """


class ChildFunctions:
    """The functions the child exposes. Every name defined here is looked up remotely;
    names starting with '_' are found but refused, so ``_private`` is never run."""

    def __init__(self, namespace):
        self._namespace = namespace

    def add(self, a, b):
        return a + b

    def multiply(self, a, b):
        return a * b

    def echo(self, x):
        return x

    def type_of(self, x):
        return type(x).__name__

    def echo_many(self, *xs):
        return list(xs)

    def fail(self, msg):
        raise ValueError(msg)

    def none(self):
        return None

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def big_ints(self):
        return [2**63 - 1, -(2**63), 2**64 - 1, 2**53 + 1]

    def get_info(self):
        return {"language": "python", "pid": os.getpid(), "namespace": self._namespace}

    def nested(self):
        return {"a": [1, {"b": [True, None, 1.5]}], "u": "héllo 世界 🎉"}

    def count_bytes(self, b):
        if not isinstance(b, bytes):
            raise TypeError(f"count_bytes expects bytes, got {type(b).__name__}")
        return len(b)

    def spray_garbage(self):
        """Before its reply, the serve loop sends GARBAGE_FOR_PARENT to the caller (see serve)."""
        return "sprayed"

    def _private(self):
        raise AssertionError("_private must never be reachable remotely")

    def list_functions(self):
        return sorted(name for name in function_table(self)
                      if not name.startswith("_") and name != "list_functions")


def function_table(functions):
    """Name -> bound method for every method defined on the ChildFunctions class."""
    return {
        name: getattr(functions, name)
        for name, value in vars(type(functions)).items()
        if callable(value) and not name.startswith("__")
    }


class ChildHandler:
    """Turns one decoded message into the reply to send (or None), like Python v4."""

    def __init__(self, namespace):
        self.namespace = namespace
        self.functions = function_table(ChildFunctions(namespace))

    def handle(self, message):
        """Return a reply message, None (no reply), or raise StopChild on shutdown."""
        if "namespace" in message and message["namespace"] != self.namespace:
            return None  # mismatched namespace: silently ignored, no error reply
        msg_type = message.get("type")
        if msg_type == "call":
            return self.handle_call(message)
        if msg_type == "heartbeat":
            return self.handle_heartbeat(message)
        if msg_type == "shutdown":
            raise StopChild()
        return None  # unknown or missing type: ignored

    def handle_heartbeat(self, message):
        if not is_nonempty_str(message.get("id")):
            return None
        metadata = message.get("metadata")
        hb_timestamp = metadata.get("hb_timestamp") if isinstance(metadata, dict) else None
        return new_message("heartbeat", message["id"],
                           metadata={"hb_timestamp": hb_timestamp, "hb_response": True})

    def handle_call(self, message):
        received_at = time.time()
        call_id = message.get("id")
        if not is_nonempty_str(call_id):
            return None  # nothing to address a reply to
        name = message.get("function")
        if not is_nonempty_str(name):
            return self.error(call_id, received_at, "ValueError: Message missing 'function' field")
        function = self.functions.get(name)
        if function is None:
            return self.error(call_id, received_at, f"AttributeError: Function '{name}' not found")
        if name.startswith("_"):
            return self.error(call_id, received_at,
                              f"PermissionError: Cannot call private method '{name}'")
        args = message.get("args", [])
        if args is None:
            args = []
        if not isinstance(args, list):
            return self.error(call_id, received_at,
                              f"TypeError: 'args' must be an array, got {type(args).__name__}")
        try:
            result = function(*args)
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            return self.error(call_id, received_at, text)
        # pack() drops result=None, so a None result has no 'result' key (Python v4 quirk).
        return new_message("response", call_id, result=result,
                           metadata={"timestamp_received": received_at})

    @staticmethod
    def error(call_id, received_at, text):
        return new_message("error", call_id, error=text,
                           metadata={"timestamp_received": received_at})


def read_spawn_port():
    """Return COMLINK_ZMQ_PORT as an int in 1024..65535, or exit 1 with a FATAL line."""
    raw = os.environ.get("COMLINK_ZMQ_PORT")
    if raw is None:
        fatal("COMLINK_ZMQ_PORT is not set (spawn mode needs it; use --bind otherwise)")
    if not re.fullmatch(r"[0-9]+", raw.strip()) or not 1024 <= int(raw) <= 65535:
        fatal(f"invalid COMLINK_ZMQ_PORT {raw!r}: must be an integer in 1024..65535")
    return int(raw)


def fatal(text):
    print(f"FATAL: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


def raise_stop(_signum, _frame):
    raise StopChild()


def send_reply(sock, envelope, reply):
    """Send ``envelope + [payload]``; retry once after 1 ms on EAGAIN like Python v4."""
    frames = envelope + [pack(reply)]
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        time.sleep(0.001)
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            print("mf_peer child: reply dropped (EAGAIN)", file=sys.stderr, flush=True)


def watch_parent(parent_pid):
    """Daemon thread: when our parent dies (we get re-parented), SIGTERM ourselves so the
    main thread stops even while it is busy inside a slow function such as sleep()."""
    while os.getppid() == parent_pid:
        time.sleep(TICK_MS / 1000)
    print("mf_peer child: parent process died, exiting", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def garbage_for_parent(call_id):
    """Hostile or odd frames a parent must survive (and ignore or print), sent raw before the
    reply to ``spray_garbage``; the real reply is then sent twice (the duplicate must be ignored)."""
    return [
        b"\xc1\xc1garbage",
        b"",
        msgpack.packb([1, 2, 3]),
        msgpack.packb("just a string"),
        msgpack.packb({"app": "other_app", "id": call_id, "type": "response", "result": "wrong app"}),
        msgpack.packb({"app": APP, "type": "response", "timestamp": time.time(), "result": "no id"}),
        msgpack.packb({"app": APP, "id": "unknown-id", "type": "response", "timestamp": time.time(), "result": 1}),
        msgpack.packb({"app": APP, "id": "unknown-id", "type": "error", "timestamp": time.time(), "error": "x"}),
        msgpack.packb({"app": APP, "id": call_id, "type": "gossip", "timestamp": time.time()}),
        msgpack.packb({"app": APP, "type": "stdout", "timestamp": time.time(), "output": "forwarded line"}),
        # A frame of ours with no type: with the call's id it would fail that call at once
        # (ProtocolError, see test/supervision-trust.test.ts), so it carries another id here.
        msgpack.packb({"app": APP, "id": "unknown-id", "timestamp": time.time()}),
    ]


def serve(sock, handler):
    """Receive loop: one message at a time, until shutdown or a signal (StopChild)."""
    while True:
        if not sock.poll(TICK_MS, zmq.POLLIN):
            continue
        frames = sock.recv_multipart(zmq.NOBLOCK)
        if len(frames) < 2:
            continue
        envelope, payload = frames[:-1], frames[-1]  # [identity(, b"")] + payload
        message = unpack(payload)
        if message is None:
            continue
        reply = handler.handle(message)
        spray = (reply is not None and message.get("type") == "call"
                 and message.get("function") == "spray_garbage" and reply.get("type") == "response")
        if spray:
            for junk in garbage_for_parent(message["id"]):
                sock.send_multipart(envelope + [junk])
        if reply is not None:
            send_reply(sock, envelope, reply)
        if spray:
            send_reply(sock, envelope, reply)


class PythonV4Registry:
    """The registry as Python v4 writes it: services.lock created exclusively (pid inside,
    retried every 100 ms for 10 s), services.json rewritten via services.tmp + rename,
    ``started`` as a local ISO time without zone."""

    def __init__(self, directory):
        self.dir = directory or os.path.join(os.path.expanduser("~"), ".multifrost")
        self.path = os.path.join(self.dir, "services.json")
        self.lock_path = os.path.join(self.dir, "services.lock")

    def _locked(self, update):
        os.makedirs(self.dir, exist_ok=True)
        deadline = time.time() + 10
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                break
            except FileExistsError:
                if time.time() > deadline:
                    raise TimeoutError("registry lock not acquired within 10 s")
                time.sleep(0.1)
        try:
            os.write(fd, str(os.getpid()).encode())
            try:
                with open(self.path) as handle:
                    services = json.load(handle)
            except (FileNotFoundError, ValueError):
                services = {}
            update(services)
            tmp = os.path.join(self.dir, "services.tmp")
            with open(tmp, "w") as handle:
                json.dump(services, handle, indent=2)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)
            os.unlink(self.lock_path)

    def register(self, service_id, port):
        def update(services):
            services[service_id] = {"port": port, "pid": os.getpid(),
                                    "started": datetime.datetime.now().isoformat()}
        self._locked(update)

    def unregister(self, service_id):
        def update(services):
            entry = services.get(service_id)
            if isinstance(entry, dict) and entry.get("pid") == os.getpid():
                del services[service_id]
        self._locked(update)


def run_child(opts):
    parent_pid = os.getppid()
    port = None if opts.bind else read_spawn_port()
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
    threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, CHILD_LINGER_MS)
    registry = None
    try:
        if opts.bind:
            bound = sock.bind_to_random_port("tcp://127.0.0.1")
            if opts.register:
                registry = PythonV4Registry(opts.registry_dir)
                registry.register(opts.register, bound)
            print(f"PORT {bound}", flush=True)
        else:
            sock.connect(f"tcp://127.0.0.1:{port}")
        serve(sock, ChildHandler(opts.namespace))
    except StopChild:
        pass
    finally:
        if registry is not None:
            registry.unregister(opts.register)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sock.close()
        context.term()
    return 0


# ---------------------------------------------------------------------------------------
# Parent role: link to the spawned worker
# ---------------------------------------------------------------------------------------

class CaseFailure(Exception):
    """A case's expectation was not met; the message is the JSON 'detail'."""


def short(value, limit=240):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class ParentLink:
    """A bound DEALER plus the spawned child process; single-threaded send/receive.

    Replies are stored in ``inbox`` keyed by id together with their arrival time."""

    SEND_TIMEOUT_MS = 1000

    def __init__(self, namespace, client_name, connect_port=None):
        self.namespace = namespace
        self.client_name = client_name
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, self.SEND_TIMEOUT_MS)
        if connect_port is not None:  # connect mode: the service is bound, we connect
            self.sock.connect(f"tcp://127.0.0.1:{connect_port}")
            self.port = connect_port
        else:
            self.sock.bind("tcp://127.0.0.1:*")
            endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            self.port = int(endpoint.rsplit(":", 1)[1])
        self.proc = None
        self.inbox = {}

    # -- process ------------------------------------------------------------------------

    def spawn(self, command):
        env = dict(os.environ, COMLINK_ZMQ_PORT=str(self.port), COMLINK_WORKER_MODE="1")
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(),
            start_new_session=True,
        )

    def child_exit_code(self):
        return None if self.proc is None else self.proc.poll()

    def terminate_child(self):
        """shutdown message -> 3 s -> SIGTERM group -> 2 s -> SIGKILL group; reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.send(new_message("shutdown"), timeout_ms=200)
            except (CaseFailure, zmq.ZMQError):
                pass  # child never connected or socket trouble: fall through to signals
            if not self.wait_exit(3.0):
                self.signal_group(signal.SIGTERM)
                if not self.wait_exit(2.0):
                    self.signal_group(signal.SIGKILL)
                    self.proc.wait()
        # The leader is gone; clear out any grandchildren left in its process group.
        if self.signal_group(signal.SIGTERM):
            time.sleep(0.2)
            self.signal_group(signal.SIGKILL)

    def wait_exit(self, seconds):
        try:
            self.proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def signal_group(self, signum):
        """Signal the child's process group; False if the group no longer exists."""
        try:
            os.killpg(self.proc.pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def close(self):
        self.sock.close()
        self.context.term()

    # -- sending ------------------------------------------------------------------------

    def send_frames(self, frames, timeout_ms=None):
        self.sock.setsockopt(zmq.SNDTIMEO, timeout_ms or self.SEND_TIMEOUT_MS)
        try:
            self.sock.send_multipart(frames)
        except zmq.Again:
            raise CaseFailure(f"send timed out (child exit code {self.child_exit_code()})")

    def send(self, message, timeout_ms=None):
        self.send_frames([b"", pack(message)], timeout_ms)
        return message["id"]

    def send_call(self, function, args, namespace=None):
        """Send a call shaped like the Python v4 parent's; return its id."""
        message = new_message(
            "call", function=function, args=list(args),
            namespace=self.namespace if namespace is None else namespace,
            client_name=self.client_name,
            metadata={"timestamp_sent": time.time()},
        )
        return self.send(message)

    def send_heartbeat(self, timeout_ms=None):
        """Send a heartbeat; return (id, hb_timestamp)."""
        hb_timestamp = time.time()
        message = new_message("heartbeat", metadata={"hb_timestamp": hb_timestamp})
        return self.send(message, timeout_ms), hb_timestamp

    # -- receiving ----------------------------------------------------------------------

    def wait_for(self, ids, timeout):
        """Receive until every id in ``ids`` has a reply or ``timeout`` s pass.

        Returns the ids still missing. Stops early if the child process exits."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [i for i in ids if i not in self.inbox]
            remaining = deadline - time.monotonic()
            if not missing or remaining <= 0:
                return missing
            if self.sock.poll(int(min(remaining, 0.05) * 1000) + 1, zmq.POLLIN):
                self.drain()
            elif self.child_exit_code() is not None:
                return missing

    def drain(self):
        """Read every waiting message into the inbox (stdout/stderr go to our stderr)."""
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.accept(frames[-1] if frames else b"", time.monotonic())

    def accept(self, payload, arrived_at):
        message = unpack(payload)
        if message is None:
            note(f"ignored undecodable/foreign message ({len(payload)} bytes): {short(payload, 120)}")
            return
        msg_type = message.get("type")
        if msg_type in ("stdout", "stderr"):
            note(f"[child {msg_type.upper()}]: {message.get('output')}")
            return
        msg_id = message.get("id")
        if not is_nonempty_str(msg_id):
            note(f"ignored message without id: {short(message, 200)}")
            return
        self.inbox[msg_id] = (message, arrived_at)

    def reply(self, msg_id, timeout, label):
        """Wait for and return the reply to ``msg_id``; CaseFailure if none arrives."""
        if self.wait_for([msg_id], timeout):
            code = self.child_exit_code()
            if code is not None:
                raise CaseFailure(f"no reply to {label}: child exited with code {code}")
            raise CaseFailure(f"no reply to {label} within {timeout:g}s")
        return self.inbox[msg_id][0]

    def call(self, function, *args, timeout, namespace=None):
        """Send one call and return its reply message."""
        msg_id = self.send_call(function, args, namespace)
        return self.reply(msg_id, timeout, f"{function}{short(tuple(args), 80)}")


def note(text):
    print(f"mf_peer parent: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Parent role: expectations
# ---------------------------------------------------------------------------------------

def same(a, b):
    """Deep equality that also requires identical Python types (bool != int != float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def result_of(reply, label):
    """The result of a 'response' reply (None when the key is missing)."""
    if reply.get("type") != "response":
        raise CaseFailure(f"{label}: expected a response, got {short(reply)}")
    return reply.get("result")


def error_of(reply, label):
    """The error string of an 'error' reply."""
    if reply.get("type") != "error":
        raise CaseFailure(f"{label}: expected an error reply, got {short(reply)}")
    error = reply.get("error")
    if not isinstance(error, str):
        raise CaseFailure(f"{label}: 'error' is not a string: {short(reply)}")
    return error


def expect_echo(link, value, timeout, function="echo"):
    reply = link.call(function, value, timeout=timeout)
    got = result_of(reply, f"{function}({short(value, 60)})")
    if not same(got, value):
        raise CaseFailure(f"{function}: sent {short(value)} ({type(value).__name__}), "
                          f"got {short(got)} ({type(got).__name__})")


def expect_result(link, expected, function, *args, timeout):
    reply = link.call(function, *args, timeout=timeout)
    got = result_of(reply, function)
    if not same(got, expected):
        raise CaseFailure(f"{function}{short(args, 80)}: expected {short(expected)} "
                          f"({type(expected).__name__}), got {short(got)} ({type(got).__name__})")


def send_all(link, calls):
    """Send several (function, args) calls without waiting; return their ids."""
    return [link.send_call(function, args) for function, args in calls]


def collect(link, ids, timeout, label):
    """Wait for all ``ids``; return their reply messages in order."""
    missing = link.wait_for(ids, timeout)
    if missing:
        raise CaseFailure(f"{label}: {len(missing)} of {len(ids)} replies missing after {timeout:g}s")
    return [link.inbox[i][0] for i in ids]


# ---------------------------------------------------------------------------------------
# Parent role: the cases (each raises CaseFailure when something is wrong)
# ---------------------------------------------------------------------------------------

def case_heartbeat(link, t):
    msg_id, hb_timestamp = link.send_heartbeat()
    reply = link.reply(msg_id, t, "heartbeat")
    problems = []
    if reply.get("type") != "heartbeat":
        problems.append(f"type {reply.get('type')!r}")
    if not isinstance(reply.get("timestamp"), (int, float)) or isinstance(reply.get("timestamp"), bool):
        problems.append(f"timestamp {reply.get('timestamp')!r}")
    metadata = reply.get("metadata")
    if not isinstance(metadata, dict) or not same(metadata.get("hb_timestamp"), hb_timestamp):
        problems.append(f"metadata {short(metadata)} (sent hb_timestamp {hb_timestamp!r})")
    if problems:
        raise CaseFailure("bad heartbeat reply: " + ", ".join(problems))


def case_add_ints(link, t):
    expect_result(link, 3, "add", 1, 2, timeout=t)


def case_add_floats(link, t):
    expect_result(link, 0.75, "add", 0.5, 0.25, timeout=t)


PRIMITIVES = [True, False, 0, -1, 255, 65536, 2**31, 2**32 + 5, -(2**40), 1.5, "", "plain"]


def case_primitives(link, t):
    for value in PRIMITIVES:
        expect_echo(link, value, t)


def case_none(link, t):
    reply = link.call("echo", None, timeout=t)
    got = result_of(reply, "echo(None)")
    if got is not None:
        raise CaseFailure(f"echo(None) returned {short(got)}")
    reply = link.call("nothing", timeout=t)
    got = result_of(reply, "nothing()")
    if got is not None:
        raise CaseFailure(f"nothing() returned {short(got)} (want nil or no 'result' key)")


def case_nested(link, t):
    expect_echo(link, {"a": [1, {"b": [True, None, 1.5]}], "c": {"d": {"e": "f"}}}, t)


def case_unicode(link, t):
    expect_echo(link, "héllo 世界 🎉 \u0000 zero", t)


def case_bytes(link, t):
    data = b"\x00\x01\xff" * 10
    expect_echo(link, data, t)
    expect_result(link, "bytes", "typeOf", data, timeout=t)


INT64_EDGES = [2**63 - 1, -(2**63), 2**64 - 1, 2**53 + 1]


def case_int64_limits(link, t):
    for value in INT64_EDGES:
        expect_echo(link, value, t)
    expect_result(link, "bigint", "typeOf", 2**63 - 1, timeout=t)
    expect_result(link, "number", "typeOf", 5, timeout=t)


def case_remote_error(link, t):
    error = error_of(link.call("fail", "boom", timeout=t), "fail('boom')")
    if not error.startswith("TypeError: boom"):
        raise CaseFailure(f"error text {short(error)} does not start with 'TypeError: boom'")


def case_missing_function(link, t):
    error = error_of(link.call("no_such_fn", timeout=t), "no_such_fn()")
    if "no_such_fn" not in error or "not found" not in error:
        raise CaseFailure(f"error text {short(error)} lacks 'no_such_fn' / 'not found'")


FORBIDDEN_NAMES = ["_hidden", "constructor", "run", "stop", "toString", "hasOwnProperty", "__proto__"]


def case_private_function(link, t):
    ids = send_all(link, [(name, []) for name in FORBIDDEN_NAMES])
    missing = link.wait_for(ids, t)
    problems = []
    for name, msg_id in zip(FORBIDDEN_NAMES, ids):
        if msg_id in missing:
            problems.append(f"{name}: no reply")
            continue
        reply = link.inbox[msg_id][0]
        if reply.get("type") != "error":
            problems.append(f"{name}: {reply.get('type')} {short(reply.get('result'), 60)}")
    if problems:
        raise CaseFailure("; ".join(problems))


LISTED = ["add", "echo", "typeOf", "fail", "nothing", "sleep"]
NOT_LISTED = ["_hidden", "constructor", "run", "stop", "toString", "listFunctions"]


def case_list_functions(link, t):
    names = result_of(link.call("listFunctions", timeout=t), "listFunctions()")
    if not isinstance(names, list):
        raise CaseFailure(f"listFunctions returned {short(names)}, not a list")
    absent = [n for n in LISTED if n not in names]
    extra = [n for n in NOT_LISTED if n in names]
    if absent or extra:
        raise CaseFailure(f"missing {absent}, unexpected {extra}, got {short(names)}")


def case_namespace_mismatch(link, t):
    msg_id = link.send_call("add", [1, 1], namespace="other")
    if not link.wait_for([msg_id], 1.0):
        raise CaseFailure(f"call in namespace 'other' was answered: {short(link.inbox[msg_id][0])}")
    expect_result(link, 4, "add", 2, 2, timeout=t)


def case_pipelined(link, t, count=250):
    ids = send_all(link, [("add", [i, i]) for i in range(count)])
    replies = collect(link, ids, max(t, 10.0), f"{count} pipelined add calls")
    wrong = [(i, reply.get("result")) for i, reply in enumerate(replies)
             if reply.get("type") != "response" or not same(reply.get("result"), 2 * i)]
    if wrong:
        raise CaseFailure(f"{len(wrong)} wrong results, first: {short(wrong[:3])}")


def case_payload_1mib(link, t):
    data = os.urandom(1024 * 1024)
    reply = link.call("echo", data, timeout=max(t, 10.0))
    got = result_of(reply, "echo(1 MiB)")
    if not isinstance(got, bytes) or got != data:
        raise CaseFailure(f"got {type(got).__name__} of length {len(got) if hasattr(got, '__len__') else '?'}")


def case_garbage(link, t):
    wrong_app = dict(new_message("call", function="add", args=[1, 1], namespace=link.namespace),
                     app="comlink_ipc_v3")
    no_type = {"app": APP, "id": str(uuid.uuid4()), "timestamp": time.time()}
    no_id = {"app": APP, "type": "call", "timestamp": time.time(), "function": "add",
             "args": [1, 1], "namespace": link.namespace}
    link.send_frames([b"", b"\xc1\xc1garbage"])
    link.send_frames([b"", msgpack.packb([1, 2, 3])])
    link.send_frames([b"", msgpack.packb(wrong_app, use_bin_type=True)])
    link.send_frames([b"", msgpack.packb(no_type, use_bin_type=True)])
    link.send_frames([b"", msgpack.packb(no_id, use_bin_type=True)])
    link.send_frames([b"", b""])  # envelope with an empty payload
    link.send_frames([b""])  # a lone empty frame
    expect_result(link, 5, "add", 2, 3, timeout=t)
    no_function = new_message("call", args=[], namespace=link.namespace,
                              metadata={"timestamp_sent": time.time()})
    error_of(link.reply(link.send(no_function), t, "call without 'function'"),
             "call without 'function'")
    link.wait_for(["never-arrives"], 0.2)  # give stray replies a moment to show up
    answered = [label for label, msg_id in (("wrong app", wrong_app["id"]), ("no type", no_type["id"]))
                if msg_id in link.inbox]
    if answered:
        raise CaseFailure(f"child answered garbage: {answered}")


def case_concurrency(link, t):
    started = time.monotonic()
    ids = send_all(link, [("sleep", [300])] * 5)
    hb_id, _ = link.send_heartbeat()
    replies = collect(link, ids + [hb_id], max(t, 2.0), "5 x sleep(300) + heartbeat")
    finished = [link.inbox[i][1] for i in ids]
    elapsed = max(finished) - started
    problems = []
    if elapsed > 1.2:
        problems.append(f"5 x sleep(300) took {elapsed:.3f}s (> 1.2s)")
    wrong = [short(r) for r in replies[:5] if r.get("type") != "response" or not same(r.get("result"), 300)]
    if wrong:
        problems.append(f"wrong sleep replies: {wrong[:2]}")
    if replies[5].get("type") != "heartbeat":
        problems.append(f"heartbeat reply: {short(replies[5])}")
    hb_at = link.inbox[hb_id][1]
    if hb_at >= min(finished):
        problems.append(f"heartbeat answered {hb_at - started:.3f}s in, after the first sleep "
                        f"finished at {min(finished) - started:.3f}s")
    if problems:
        raise CaseFailure("; ".join(problems))


def case_shutdown(link, t):
    link.send(new_message("shutdown"))
    if not link.wait_exit(3.0):
        raise CaseFailure("child still running 3s after shutdown")
    if link.proc.returncode != 0:
        raise CaseFailure(f"child exited with code {link.proc.returncode}")


CASES = [
    ("heartbeat", case_heartbeat),
    ("add_ints", case_add_ints),
    ("add_floats", case_add_floats),
    ("primitives", case_primitives),
    ("none", case_none),
    ("nested", case_nested),
    ("unicode", case_unicode),
    ("bytes", case_bytes),
    ("int64_limits", case_int64_limits),
    ("remote_error", case_remote_error),
    ("missing_function", case_missing_function),
    ("private_function", case_private_function),
    ("list_functions", case_list_functions),
    ("namespace_mismatch", case_namespace_mismatch),
    ("pipelined_200", case_pipelined),
    ("payload_1mib", case_payload_1mib),
    ("garbage", case_garbage),
    ("concurrency", case_concurrency),
    ("shutdown", case_shutdown),
]


# ---------------------------------------------------------------------------------------
# Parent role: driver
# ---------------------------------------------------------------------------------------

def emit(record):
    print(json.dumps(record), flush=True)


def wait_ready(link, timeout):
    """Heartbeat until the child answers; CaseFailure if it does not within ``timeout``.

    The DEALER cannot send before the child connects, so the send is retried in short
    slices while watching for an early child exit."""
    deadline = time.monotonic() + timeout
    while True:
        code = link.child_exit_code()
        if code is not None:
            raise CaseFailure(f"child exited with code {code} before answering a heartbeat")
        if time.monotonic() >= deadline:
            raise CaseFailure(f"child never connected within {timeout:g}s")
        try:
            msg_id, _ = link.send_heartbeat(timeout_ms=100)
            break
        except CaseFailure:
            continue
    reply = link.reply(msg_id, max(0.0, deadline - time.monotonic()), "readiness heartbeat")
    if reply.get("type") != "heartbeat":
        raise CaseFailure(f"readiness heartbeat answered with {short(reply)}")


def run_cases(link, call_timeout, tally, skip=()):
    """Run every case in order, printing one JSON line each and counting into ``tally``."""
    for name, case in CASES:
        if name in skip:
            continue
        try:
            case(link, call_timeout)
            detail = None
        except CaseFailure as failure:
            detail = str(failure)
        except Exception as exc:  # a bug in the case itself must not stop the run
            detail = f"crashed: {type(exc).__name__}: {exc}"
        emit({"case": name, "ok": detail is None, "detail": detail or ""})
        tally["passed" if detail is None else "failed"] += 1


def raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt()


def run_parent(opts):
    signal.signal(signal.SIGTERM, raise_interrupt)
    command = [opts.exec, *opts.exec_arg, opts.script, *opts.script_arg]
    link = ParentLink(opts.namespace, opts.client_name)
    tally = {"passed": 0, "failed": 0}
    try:
        link.spawn(command)
        wait_ready(link, opts.timeout)
        run_cases(link, opts.call_timeout, tally)
    except (CaseFailure, OSError) as failure:
        emit({"case": "ready", "ok": False, "detail": f"{command}: {failure}"})
        tally["failed"] += 1
    except KeyboardInterrupt:
        emit({"case": "interrupted", "ok": False, "detail": "parent got SIGINT/SIGTERM"})
        tally["failed"] += 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        link.terminate_child()
        link.close()
    emit({"done": True, **tally})
    return 0 if tally["failed"] == 0 else 1


def discover_port(service_id, registry_dir, timeout):
    """Python v4's discover: poll services.json until the entry's pid is alive."""
    path = os.path.join(registry_dir or os.path.join(os.path.expanduser("~"), ".multifrost"), "services.json")
    deadline = time.time() + timeout
    while True:
        try:
            with open(path) as handle:
                entry = json.load(handle).get(service_id)
            if isinstance(entry, dict):
                os.kill(entry["pid"], 0)
                return entry["port"]
        except (FileNotFoundError, ValueError, ProcessLookupError, KeyError, TypeError):
            pass
        if time.time() > deadline:
            raise CaseFailure(f"service {service_id!r} not found in {path} within {timeout} s")
        time.sleep(0.1)


def run_connect(opts):
    """Connect-mode parent: every case except ``shutdown`` (a parent never stops a service
    it did not spawn)."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    tally = {"passed": 0, "failed": 0}
    link = None
    try:
        port = discover_port(opts.service, opts.registry_dir, opts.timeout)
        link = ParentLink(opts.namespace, opts.client_name, connect_port=port)
        wait_ready(link, opts.timeout)
        run_cases(link, opts.call_timeout, tally, skip={"shutdown"})
    except (CaseFailure, OSError) as failure:
        emit({"case": "ready", "ok": False, "detail": str(failure)})
        tally["failed"] += 1
    except KeyboardInterrupt:
        emit({"case": "interrupted", "ok": False, "detail": "parent got SIGINT/SIGTERM"})
        tally["failed"] += 1
    finally:
        if link is not None:
            link.close()
    emit({"done": True, **tally})
    return 0 if tally["failed"] == 0 else 1


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description="comlink_ipc_v4 Python test peer")
    roles = parser.add_subparsers(dest="role", required=True)

    child = roles.add_parser("child", help="serve test functions as a v4 child")
    child.add_argument("--namespace", default="default")
    child.add_argument("--bind", action="store_true",
                       help="bind tcp://127.0.0.1:* and print 'PORT <n>' (connect mode)")
    child.add_argument("--register", metavar="SERVICE_ID", default=None,
                       help="with --bind: register SERVICE_ID in the registry as Python v4 does")
    child.add_argument("--registry-dir", default=None,
                       help="registry directory (default ~/.multifrost)")
    child.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # Python v4 parents add it

    connect = roles.add_parser("connect", help="connect to a registered service and run the cases")
    connect.add_argument("--service", required=True, help="service id to discover")
    connect.add_argument("--registry-dir", default=None, help="registry directory (default ~/.multifrost)")
    connect.add_argument("--timeout", type=float, default=10.0, help="discovery/readiness timeout, seconds")
    connect.add_argument("--call-timeout", type=float, default=5.0, help="per-call timeout, seconds")
    connect.add_argument("--namespace", default="default")
    connect.add_argument("--client-name", default=None)

    parent = roles.add_parser("parent", help="spawn a worker and run the interop cases")
    parent.add_argument("--exec", required=True, help="executable that runs the worker")
    parent.add_argument("--exec-arg", action="append", default=[],
                        help="argument placed before the script (repeatable; use --exec-arg=-x for dashes)")
    parent.add_argument("--script", required=True, help="worker script path")
    parent.add_argument("--script-arg", action="append", default=[], help=argparse.SUPPRESS)
    parent.add_argument("--timeout", type=float, default=10.0, help="readiness timeout, seconds")
    parent.add_argument("--call-timeout", type=float, default=5.0, help="per-call timeout, seconds")
    parent.add_argument("--namespace", default="default")
    parent.add_argument("--client-name", default=None)
    return parser.parse_args(argv)


def main(argv):
    opts = parse_args(argv)
    if opts.role == "child":
        return run_child(opts)
    if opts.role == "connect":
        return run_connect(opts)
    return run_parent(opts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
