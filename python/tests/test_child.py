import asyncio
import threading
import time
import uuid

import msgpack
import pytest
import zmq

from multifrost import ChildWorker, FileRegistry, current_call

APP = "comlink_ipc_v4"


class Sample(ChildWorker):
    def __init__(self, service_id, **options):
        super().__init__(service_id, **options)
        self.release = threading.Event()

    def add(self, a, b):
        return a + b

    def block(self):
        self.release.wait(10)
        return "released"

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds

    async def async_slow(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    def context(self):
        call = self.call
        assert call is current_call()
        return {"id": call.id, "traceparent": call.traceparent, "deadline": call.deadline, "client": call.client_name}

    async def async_context(self):
        await asyncio.sleep(0)
        return self.call.traceparent

    def shout(self, text):
        print(text)
        return True

    def fail(self):
        raise KeyError("missing")


class Service:
    """A worker serving in a background thread (connect mode, temporary registry) and a DEALER."""

    def __init__(self, tmp_path, name="svc", **options):
        self.registry = FileRegistry(tmp_path)
        self.worker = Sample(name, registry=self.registry, **options)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        entry = self.registry.discover(name, timeout=5)
        self.context = zmq.Context()
        self.sock = self.dealer(entry["port"])
        self.name = name

    def _run(self):
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def dealer(self, port):
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        return sock

    def send(self, message, sock=None):
        full = {"app": APP, "id": uuid.uuid4().hex, "timestamp": time.time()}
        full.update(message)
        (sock or self.sock).send_multipart([b"", msgpack.packb(full, use_bin_type=True)])
        return full["id"]

    def call(self, function, *args, sock=None, **fields):
        return self.send({"type": "call", "function": function, "args": list(args), **fields}, sock)

    def recv(self, timeout=5.0, sock=None):
        sock = sock or self.sock
        assert sock.poll(int(timeout * 1000)), "no reply"
        return msgpack.unpackb(sock.recv_multipart()[-1], strict_map_key=False)

    def replies(self, count, timeout=5.0, sock=None):
        return [self.recv(timeout, sock) for _ in range(count)]

    def close(self):
        self.worker.stop()
        self.thread.join(10)
        self.sock.close()
        self.context.term()


@pytest.fixture
def service(tmp_path):
    started = Service(tmp_path)
    yield started
    started.worker.release.set()
    started.close()


def test_call_and_response_carry_every_core_field(service):
    call_id = service.call("add", 2, 3)
    reply = service.recv()
    assert reply["type"] == "response" and reply["id"] == call_id and reply["result"] == 5
    assert reply["app"] == APP and isinstance(reply["timestamp"], float)


def test_heartbeat_is_answered_while_every_handler_thread_is_busy(tmp_path):
    svc = Service(tmp_path, max_concurrency=1)
    try:
        svc.call("block")
        time.sleep(0.1)
        started = time.monotonic()
        hb_id = svc.send({"type": "heartbeat", "metadata": {"hb_timestamp": 42.0}})
        reply = svc.recv()
        assert time.monotonic() - started < 0.5
        assert reply["id"] == hb_id and reply["metadata"] == {"hb_timestamp": 42.0, "hb_response": True}
        svc.worker.release.set()
        assert svc.recv()["result"] == "released"
    finally:
        svc.worker.release.set()
        svc.close()


def test_sync_and_async_calls_overlap(service):
    started = time.monotonic()
    for _ in range(5):
        service.call("slow", 0.3)
    for _ in range(5):
        service.call("async_slow", 0.3)
    replies = service.replies(10)
    assert all(r["type"] == "response" for r in replies)
    assert time.monotonic() - started < 0.9


def test_calls_beyond_the_queue_bound_get_a_busy_error(tmp_path):
    svc = Service(tmp_path, max_concurrency=1, max_queued_calls=1)
    try:
        first, second, third = svc.call("block"), svc.call("block"), svc.call("block")
        busy = svc.recv()
        assert busy["id"] == third and busy["type"] == "error" and busy["error"].startswith("BusyError:")
        svc.worker.release.set()
        assert {r["id"] for r in svc.replies(2)} == {first, second}
    finally:
        svc.worker.release.set()
        svc.close()


def test_call_context_from_metadata(service):
    deadline = time.time() + 30
    service.call("context", metadata={"traceparent": "00-abc-def-01", "deadline": deadline}, client_name="me")
    result = service.recv()["result"]
    assert result["traceparent"] == "00-abc-def-01" and result["deadline"] == deadline and result["client"] == "me"
    assert len(result["id"]) == 32
    service.call("async_context", metadata={"traceparent": "00-x-y-01"})
    assert service.recv()["result"] == "00-x-y-01"
    service.call("context")
    assert service.recv()["result"]["traceparent"] is None


def test_errors_private_and_missing_functions(service):
    service.call("fail")
    error = service.recv()
    assert error["type"] == "error" and error["error"] == "KeyError: 'missing'" and "Traceback" in error["stack"]
    for name, text in (("_secret", "PermissionError: Cannot call private method '_secret'"),
                       ("run", "AttributeError: Function 'run' not found"),
                       ("stop", "AttributeError: Function 'stop' not found"),
                       ("nope", "AttributeError: Function 'nope' not found")):
        service.call(name)
        assert service.recv()["error"] == text
    service.call("list_functions")
    assert service.recv()["result"] == ["add", "async_context", "async_slow", "block", "context", "fail", "shout", "slow"]


def test_invalid_calls_with_a_readable_id_get_an_error_reply(service):
    sock = service.sock
    sock.send_multipart([b"", b"\xc1garbage"])
    sock.send_multipart([b"", msgpack.packb([1, 2])])
    sock.send_multipart([b""])  # the ROUTER sees [identity, b""]: an empty payload
    service.send({"type": "call", "function": "add", "args": [1, 1], "app": "other"})
    service.send({"type": "mystery"})
    no_function = service.send({"type": "call", "args": []})
    bad_args = service.send({"type": "call", "function": "add", "args": "x"})
    reply = service.recv()
    assert reply["id"] == no_function and reply["error"] == "InvalidMessageError: Message missing 'function' field"
    assert service.recv()["id"] == bad_args
    service.call("add", 1, 1, namespace="elsewhere")  # ignored
    service.call("add", 20, 22)
    assert service.recv()["result"] == 42
    rejected = service.worker.stats["rejected"]
    assert rejected["undecodable"] == 2 and rejected["not-a-map"] == 1
    assert rejected["wrong-app"] == 1 and rejected["unknown-type"] == 1 and rejected["namespace-mismatch"] == 1


def test_connect_mode_refuses_shutdown_messages_by_default(service):
    service.send({"type": "shutdown"})
    service.call("add", 1, 2)
    assert service.recv()["result"] == 3
    assert service.worker.stats["rejected"]["shutdown-refused"] == 1


def test_shutdown_message_obeyed_when_accepted_and_unregisters(tmp_path):
    svc = Service(tmp_path, accept_shutdown=True)
    try:
        assert svc.registry.lookup("svc") is not None
        svc.send({"type": "shutdown"})
        svc.thread.join(10)
        assert not svc.thread.is_alive() and svc.error is None
        assert svc.registry.lookup("svc") is None
    finally:
        svc.close()


def test_a_second_service_with_the_same_id_is_refused_while_the_first_lives(service, tmp_path):
    second = Sample("svc", registry=FileRegistry(tmp_path))
    from multifrost import ServiceAlreadyRunningError
    # Same process, so the registry would let us replace it: use another pid's entry instead.
    FileRegistry(tmp_path).register("other", 9999, pid=__import__("os").getppid())
    with pytest.raises(ServiceAlreadyRunningError):
        Sample("other", registry=FileRegistry(tmp_path)).run()
    assert second.list_functions()


def test_printed_lines_go_to_each_parent_that_called_once(tmp_path):
    # Started inside the test (not in a fixture): pytest swaps sys.stdout between phases.
    service = Service(tmp_path)
    other = service.dealer(service.registry.lookup("svc")["port"])
    try:
        service.call("add", 0, 0)
        service.recv()
        service.call("add", 0, 0, sock=other)
        service.recv(sock=other)
        service.call("shout", "hello there")
        seen = {}
        for sock in (service.sock, other):
            messages = []
            while sock.poll(300):
                messages.append(msgpack.unpackb(sock.recv_multipart()[-1]))
            seen[sock] = [m for m in messages if m["type"] == "stdout"]
        assert [m["output"] for m in seen[service.sock]] == ["hello there"]
        assert [m["output"] for m in seen[other]] == ["hello there"]
        assert seen[service.sock][0]["id"] and seen[service.sock][0]["app"] == APP
    finally:
        other.close()
        service.close()
