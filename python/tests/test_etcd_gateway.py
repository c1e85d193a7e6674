"""The etcd gateway and registry against fake HTTP endpoints (threads in the test, 127.0.0.1):
one deadline per request whatever the endpoint does, stream errors, and what reads keep. No etcd
needed."""

import base64
import json
import socket
import threading
import time

import pytest

from multifrost import EtcdRegistry, LeaseEvents, RegistryError
from multifrost._etcd_gateway import EtcdGateway, _error_of
from multifrost._etcd_lease import LeasedKey

#: However long a request may take in these tests; a hung one is reported after this.
BOUND_S = 5.0


class FakeEtcd:
    """An HTTP endpoint: `trickle` sends a never-ending reply one byte every 0.1 s; else each
    request gets `reply(path, body)` -> (status, JSON object). Requests are recorded."""

    def __init__(self, reply=None, trickle=False):
        self.reply = reply
        self.trickle = trickle
        self.requests = []
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn):
        with conn:
            try:
                if self.trickle:
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                        conn.sendall(bytes([byte]))
                        if self.stopping.wait(0.1):
                            return
                    return
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += conn.recv(65536)
                path = head.split(b" ")[1].decode()
                self.requests.append((path, json.loads(body)))
                status, reply = self.reply(path, json.loads(body))
                payload = json.dumps(reply).encode()
                conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(payload), payload))
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.listener.close()
        for thread in self.threads:
            thread.join(2)


@pytest.fixture
def trickler():
    server = FakeEtcd(trickle=True)
    yield server
    server.close()


def bounded(action):
    """Runs `action` in a thread; (seconds it took, its exception or result). Fails if it hangs."""
    outcome = {}
    done = threading.Event()

    def run():
        started = time.monotonic()
        try:
            outcome["result"] = action()
        except BaseException as exc:  # noqa: BLE001
            outcome["result"] = exc
        outcome["took"] = time.monotonic() - started
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(BOUND_S), f"still running after {BOUND_S} s"
    return outcome["took"], outcome["result"]


# -- one deadline per request -------------------------------------------------------------------


def test_a_trickling_endpoint_cannot_hold_a_request_past_its_deadline(trickler):
    gateway = EtcdGateway([trickler.endpoint], 0.5)
    took, result = bounded(lambda: gateway.call("kv/range", {"key": "YQ=="}))
    assert isinstance(result, RegistryError) and "timed out" in str(result)
    assert took < 1.0


def test_register_and_the_revoke_of_stop_are_bounded_by_the_request_timeout(trickler):
    registry = EtcdRegistry([trickler.endpoint], request_timeout=0.5)
    took, result = bounded(lambda: registry.register("svc", 5000))
    assert isinstance(result, RegistryError) and "cannot register" in str(result)
    assert took < 1.5  # a grant; nothing put
    key = LeasedKey(EtcdGateway([trickler.endpoint], 0.5), "k", "v", 10)
    key.lease = 7  # as if registered: stop() revokes it (what SIGTERM's shutdown does)
    took, result = bounded(key.stop)
    assert result is None and took < 1.0


def test_discover_keeps_within_its_timeout_whatever_the_request_timeout(trickler):
    registry = EtcdRegistry([trickler.endpoint], request_timeout=3.0)
    took, result = bounded(lambda: registry.discover("svc", timeout=0.5))
    assert isinstance(result, RegistryError)
    assert took < 1.0


# -- errors -------------------------------------------------------------------------------------


def test_a_stream_error_is_read_with_its_grpc_code_and_unavailable_moves_on():
    stream_error = {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: leader changed", "http_status": "Service Unavailable"}}
    assert _error_of(200, json.dumps(stream_error).encode()) == ("etcdserver: leader changed (HTTP 200)", 14)
    unavailable = FakeEtcd(lambda path, body: (200, stream_error))
    good = FakeEtcd(lambda path, body: (200, {"result": {"ID": "7", "TTL": "10"}}))
    try:
        reply = EtcdGateway([unavailable.endpoint, good.endpoint], 2.0).call("lease/keepalive", {"ID": "7"})
        assert reply == {"result": {"ID": "7", "TTL": "10"}}
        assert len(unavailable.requests) == 1
    finally:
        unavailable.close()
        good.close()


def test_lease_events_write_the_ts_lines_on_stderr_by_default(capsys):
    LeaseEvents().lost("multifrost/services/svc/ab", "etcd no longer has lease 7")
    LeaseEvents().renewed("multifrost/services/svc/ab")
    assert capsys.readouterr().err == (
        "multifrost: the etcd lease of multifrost/services/svc/ab was lost (etcd no longer has lease 7); registering again when etcd answers\n"
        "multifrost: multifrost/services/svc/ab is registered in etcd again\n"
    )


# -- what reads keep ------------------------------------------------------------------------------


def _kv(key, value):
    return {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()}


def _entry(host, hostname=None, started="2024-01-01T00:00:00.000Z", **extra):
    stored = {"host": host, "port": 5000, "pid": 42, "started": started, **extra}
    if hostname is not None:
        stored["hostname"] = hostname
    return json.dumps(stored)


def test_reads_are_capped_and_skip_what_the_ts_side_skips():
    here = socket.gethostname()
    service = "multifrost/services/svc/"
    kvs = [
        _kv(service + "a", _entry("127.0.0.1", here, "2024-01-01T00:00:01.000Z")),  # ours, here
        _kv(service + "b", _entry("127.0.0.1", "elsewhere-" + here)),  # another machine's loopback
        _kv(service + "c", _entry("::1", "elsewhere-" + here)),
        _kv(service + "d", _entry("127.0.0.1", None, "2024-01-01T00:00:02.000Z")),  # no hostname: kept
        _kv(service + "e", _entry("10.0.0.9", "elsewhere-" + here, "2024-01-01T00:00:03.000Z")),
        _kv(service + "f", _entry("10.0.0.8", here, pad="x" * 4096)),  # over 4096 characters
        _kv("multifrost/services/%E0%A4%A/g", _entry("10.0.0.7")),  # an id that does not decode
        _kv("multifrost/services/%F0%9F%98%80/h", _entry("10.0.0.6")),
    ]

    def reply(path, body):
        start = base64.b64decode(body["key"]).decode()
        return 200, {"kvs": [kv for kv in kvs if base64.b64decode(kv["key"]).decode().startswith(start)]}

    server = FakeEtcd(reply)
    try:
        registry = EtcdRegistry([server.endpoint], request_timeout=2.0)
        assert [entry["instance"] for entry in registry.instances("svc")] == ["a", "d", "e"]
        listed = registry.list_instances()
        assert sorted((service_id, entry["instance"]) for service_id, entry in listed) == [
            ("svc", "a"), ("svc", "b"), ("svc", "c"), ("svc", "d"), ("svc", "e"), ("\U0001f600", "h")
        ]
        limits = {base64.b64decode(body["key"]).decode(): body.get("limit") for _, body in server.requests}
        assert limits == {service: "1000", "multifrost/services/": "10000"}
    finally:
        server.close()
