"""The etcd registry (multifrost.EtcdRegistry, registry URLs) against a real throwaway etcd:
Debian's etcd-server on free loopback ports with a temporary data dir, stopped and removed after
the module whatever happens. Each test has a key prefix of its own and a 2 s lease."""

import base64
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import multifrost
from etcd_server import ETCD, TestEtcd
from multifrost import ChildWorker, EtcdRegistry, FileRegistry, LeaseEvents, RegistryError, ServiceNotFoundError, open_registry, parse_registry_url
from multifrost._etcd_gateway import EtcdGateway
from multifrost._registry_url import EtcdRegistryUrl, FileRegistryUrl

TTL = 2
PY_SRC = str(Path(multifrost.__file__).resolve().parent.parent)  # the copy under test (installed or python/src)


# -- registry URLs (the same cases as test/etcd-registry.test.ts) ---------------------------------


def test_parses_file_and_etcd_urls_and_refuses_anything_else():
    assert parse_registry_url("file:///tmp/reg") == FileRegistryUrl("/tmp/reg")
    assert parse_registry_url("etcd://10.0.0.5:2379,10.0.0.6:2379") == EtcdRegistryUrl(("10.0.0.5:2379", "10.0.0.6:2379"))
    assert parse_registry_url("etcd://h:2379/apps/x?ttl=5&timeout=1000") == EtcdRegistryUrl(("h:2379",), "apps/x/", 5, 1.0)
    with pytest.raises(ValueError, match="unsupported registry URL"):
        parse_registry_url("redis://h:1")
    with pytest.raises(ValueError, match="names no etcd endpoint"):
        parse_registry_url("etcd:///prefix")
    with pytest.raises(ValueError, match="unknown parameter 'tll'"):
        parse_registry_url("etcd://h:1?tll=3")


def test_url_details_follow_the_ts_parser():
    assert parse_registry_url("etcd://h:1/a%20b/").prefix == "a b/"  # decodeURIComponent
    assert parse_registry_url("etcd://h:1,,k:2").endpoints == ("h:1", "k:2")
    assert parse_registry_url("etcd://h:1?ttl=0x10").lease_ttl == 16  # Number("0x10")
    with pytest.raises(ValueError, match=r"ttl must be an integer from 2 to 86400 \(got NaN\)"):
        parse_registry_url("etcd://h:1?ttl=abc")  # Number("abc"), refused by checkEtcdOptions
    assert parse_registry_url("file://localhost/srv/reg%20x") == FileRegistryUrl("/srv/reg x")
    with pytest.raises(ValueError, match="host must be"):
        parse_registry_url("file://otherhost/srv")
    with pytest.raises(ValueError, match="the prefix is not valid percent-encoding"):
        parse_registry_url("etcd://h:1/%zz")


def test_a_bad_etcd_option_is_a_value_error_when_opened():
    with pytest.raises(ValueError, match=r"ttl must be an integer from 2 to 86400 \(got 1\)"):
        open_registry("etcd://h:1?ttl=1")
    with pytest.raises(ValueError, match=r"ttl must be an integer from 2 to 86400 \(got NaN\)"):
        open_registry("etcd://h:1?ttl=abc")
    with pytest.raises(ValueError, match="timeout must be a positive number of milliseconds"):
        open_registry("etcd://h:1?timeout=0")
    with pytest.raises(ValueError, match=r"lease_ttl must be an integer from 2 to 86400 \(got 86401\)"):
        EtcdRegistry(["h:1"], lease_ttl=86401)
    with pytest.raises(ValueError, match="request_timeout must be a positive number of seconds"):
        EtcdRegistry(["h:1"], request_timeout=math.inf)
    with pytest.raises(ValueError, match="prefix must be a string without control characters"):
        EtcdRegistry(["h:1"], prefix="a\nb/")
    with pytest.raises(ValueError, match="an etcd endpoint must be host:port"):
        open_registry("etcd://no-port")
    with pytest.raises(ValueError, match="unknown parameter"):
        ChildWorker("svc", registry="etcd://h:1?nope=1")  # a worker's URL fails at construction


def test_open_registry_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIFROST_REGISTRY", raising=False)
    monkeypatch.setenv("MULTIFROST_REGISTRY_DIR", str(tmp_path / "default"))
    assert open_registry().dir == str(tmp_path / "default")
    assert open_registry(None, str(tmp_path / "given")).dir == str(tmp_path / "given")
    monkeypatch.setenv("MULTIFROST_REGISTRY", f"file://{tmp_path}/from-url")
    assert open_registry().dir == f"{tmp_path}/from-url"
    monkeypatch.setenv("MULTIFROST_REGISTRY", "etcd://127.0.0.1:2379/apps/?ttl=4&timeout=250")
    etcd = open_registry()
    assert isinstance(etcd, EtcdRegistry)
    assert (etcd.location, etcd.lease_ttl, etcd.request_timeout) == ("etcd://127.0.0.1:2379/apps/", 4, 0.25)
    mine = FileRegistry(tmp_path)
    assert open_registry(mine) is mine


# -- against a real etcd ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd():
    if not os.access(ETCD, os.X_OK):
        pytest.skip(f"no etcd at {ETCD} (scripts/setup.sh installs etcd-server)")
    server = TestEtcd()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def url(etcd, request):
    if etcd.process is None:  # a test that stopped it and failed before starting it again
        etcd.start()
    return etcd.url(f"py{os.getpid()}-{request.node.name[:40]}", f"ttl={TTL}")


@pytest.fixture
def registry(url):
    opened = open_registry(url)
    yield opened
    opened.close()


def raw_entries(etcd, prefix):
    """Every key under `prefix` and its value as stored, read with the gateway, not the registry."""
    gateway = EtcdGateway([etcd.endpoint], 3.0)
    start = prefix.encode()
    reply = gateway.call("kv/range", {"key": base64.b64encode(start).decode(), "range_end": base64.b64encode(start[:-1] + bytes([start[-1] + 1])).decode()})
    return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in reply.get("kvs", [])}


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_keeps_several_instances_each_under_its_own_lease_and_unregister_removes_only_ours(registry):
    a = registry.register("math", 4001, host="10.0.0.7")
    b = registry.register("math", 4002)
    registry.register("math/extra", 4003)  # a "/" in an id stays apart from "math"
    assert a["host"] == "10.0.0.7" and a["port"] == 4001 and a["pid"] == os.getpid()
    assert re.fullmatch(r"[0-9a-f]{16}", a["instance"])
    instances = registry.instances("math")
    assert sorted(entry["port"] for entry in instances) == [4001, 4002]
    assert next(entry for entry in instances if entry["port"] == 4002)["host"] == "127.0.0.1"
    assert next(entry for entry in instances if entry["port"] == 4002)["instance"] == b["instance"]
    assert registry.lookup("math")["port"] in (4001, 4002)
    assert sorted(registry.list()) == ["math", "math/extra"]
    assert len({key.lease for key in registry.leases("math")}) == 2
    assert registry.unregister("math", 999_999) is False
    assert registry.unregister("math") is True
    assert registry.instances("math") == []  # revoked: gone at once, not after the TTL
    assert registry.lookup("math/extra")["port"] == 4003


def test_writes_the_key_and_value_the_ts_registry_reads(registry, etcd, url):
    entry = registry.register("a b/ü", 4100, host="203.0.113.9")
    prefix = parse_registry_url(url).prefix
    stored = raw_entries(etcd, prefix)
    key = f"{prefix}services/a%20b%2F%C3%BC/{entry['instance']}"  # encodeURIComponent
    assert list(stored) == [key]
    value = stored[key]
    assert list(value) == ["host", "port", "pid", "started", "hostname"]
    assert value == {"host": "203.0.113.9", "port": 4100, "pid": os.getpid(), "started": entry["started"], "hostname": socket.gethostname()}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value["started"])
    assert registry.list_instances() == [("a b/ü", {**value, "instance": entry["instance"]})]


def test_discover_waits_for_a_late_instance_and_times_out_with_service_not_found(registry):
    threading.Timer(0.3, lambda: registry.register("late", 4200)).start()
    started = time.monotonic()
    assert registry.discover("late", timeout=5)["port"] == 4200
    assert time.monotonic() - started < 2
    with pytest.raises(ServiceNotFoundError):
        registry.discover("never", timeout=0.3)


def test_keep_alive_keeps_a_registration_past_twice_its_ttl(registry):
    entry = registry.register("steady", 4300)
    time.sleep(2 * TTL + 1)
    assert [found["instance"] for found in registry.instances("steady")] == [entry["instance"]]
    assert registry.leases("steady")[0].renewals >= 4  # every TTL/3


def test_an_unreachable_etcd_is_a_registry_error_within_the_timeout():
    refused = open_registry(f"etcd://127.0.0.1:{free_port()}/x/?timeout=500")
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        black_hole = open_registry(f"etcd://127.0.0.1:{silent.getsockname()[1]}/x/?timeout=500")
        for reg in (refused, black_hole):
            for attempt in (lambda: reg.register("math", 4000), lambda: reg.lookup("math"), lambda: reg.discover("math", 0.8)):
                started = time.monotonic()
                with pytest.raises(RegistryError):
                    attempt()
                # 0.5 s per request; discover's last look may start just before its deadline.
                assert time.monotonic() - started < 2.0
        assert black_hole.leases("math") == []


def test_several_endpoints_are_tried_in_turn_and_the_one_that_answered_is_kept(etcd):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        reg = open_registry(f"etcd://127.0.0.1:{silent.getsockname()[1]},{etcd.endpoint}/py-multi-{os.getpid()}/?ttl={TTL}&timeout=2000")
        try:
            reg.register("multi", 4400)  # the silent one gets half the time, then etcd answers
            started = time.monotonic()
            assert len(reg.instances("multi")) == 1
            assert time.monotonic() - started < 0.5  # straight to the endpoint that answered
        finally:
            reg.close()


def test_a_lost_lease_is_recreated_and_the_key_put_again(url, etcd):
    events = []

    class Recorder(LeaseEvents):
        def lost(self, key, reason):
            events.append(("lost", reason))

        def renewed(self, key):
            events.append(("renewed", key))

    parsed = parse_registry_url(url)
    reg = EtcdRegistry(parsed.endpoints, prefix=parsed.prefix, lease_ttl=TTL, events=Recorder())
    try:
        entry = reg.register("phoenix", 4500)
        leased = reg.leases("phoenix")[0]
        first = leased.lease
        EtcdGateway([etcd.endpoint], 3.0).call("lease/revoke", {"ID": str(first)})  # as if it expired
        assert reg.instances("phoenix") == []
        wait_until(lambda: len(reg.instances("phoenix")) == 1, 5, "the key to be put again")
        assert reg.instances("phoenix")[0]["instance"] == entry["instance"]
        assert leased.lease != first and leased.recreated == 1
        assert [kind for kind, _ in events] == ["lost", "renewed"]
    finally:
        reg.close()
    assert reg.instances("phoenix") == []


def test_the_registration_is_there_after_an_etcd_restart(registry, etcd):
    entry = registry.register("survivor", 4600)
    etcd.stop()
    try:
        time.sleep(TTL + 1)  # longer than the lease: keep-alives fail all along
    finally:
        etcd.start()
    wait_until(lambda: [e["instance"] for e in registry.instances("survivor")] == [entry["instance"]], 10, "the registration")
    renewals = registry.leases("survivor")[0].renewals
    wait_until(lambda: registry.leases("survivor")[0].renewals > renewals, 5, "keep-alives again")
    time.sleep(TTL + 0.5)
    assert [e["instance"] for e in registry.instances("survivor")] == [entry["instance"]]


def test_unregister_with_etcd_down_returns_within_the_timeout(url, etcd):
    reg = open_registry(url.replace(f"ttl={TTL}", f"ttl={TTL}&timeout=500"))
    reg.register("orphan", 4700)
    etcd.stop()
    try:
        started = time.monotonic()
        assert reg.unregister("orphan") is True
        assert time.monotonic() - started < 2.5  # thread joined, revoke given up: the TTL removes it
    finally:
        etcd.start()


# -- connect mode: a Python service process registered through $MULTIFROST_REGISTRY -------------


SERVICE = """
from multifrost import ChildWorker

class Svc(ChildWorker):
    def add(self, a, b):
        return a + b

Svc("py-svc").run()
"""


def start_service(url, registry, advertise=None):
    env = {**os.environ, "MULTIFROST_REGISTRY": url, "PYTHONPATH": PY_SRC}
    code = SERVICE if advertise is None else SERVICE.replace('Svc("py-svc")', f'Svc("py-svc", advertise="{advertise}")')
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(e["pid"] == process.pid for e in registry.instances("py-svc")) or process.poll() is not None, 10, "the service to register")
    except BaseException:
        process.kill()
        process.wait()
        raise
    assert process.poll() is None, f"the service exited with {process.returncode}"
    return process


def test_a_service_registers_from_the_environment_and_sigterm_revokes_it_at_once(url, registry):
    process = start_service(url, registry, advertise="198.51.100.7")
    try:
        (entry,) = registry.instances("py-svc")
        assert (entry["host"], entry["pid"]) == ("198.51.100.7", process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert registry.instances("py-svc") == []  # revoked before exit, no TTL wait
    finally:
        process.kill()
        process.wait()


def test_a_killed_service_is_gone_when_its_lease_expires(url, registry):
    process = start_service(url, registry)
    try:
        assert registry.instances("py-svc")[0]["host"] == "127.0.0.1"
        process.kill()
        process.wait()
        killed = time.monotonic()
        assert len(registry.instances("py-svc")) == 1  # nobody revoked it
        wait_until(lambda: registry.instances("py-svc") == [], TTL + 3, "the lease to expire")
        assert time.monotonic() - killed > 0.5
    finally:
        process.kill()
        process.wait()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
