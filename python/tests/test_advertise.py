"""What a connect-mode service publishes (`host`, `advertise`, `insecure`), as src/child/options.ts
decides it, and how the file registry stores it (`advertise`, only for a non-loopback address)."""

import json
import threading

import pytest

from multifrost import ChildWorker, FileRegistry
from multifrost._advertise import advertised_address, check_bind, first_external_ipv4


class Svc(ChildWorker):
    def add(self, a, b):
        return a + b


def test_only_the_default_loopback_publishes_no_address():
    # src/child/options.ts: parents use 127.0.0.1 when an entry names no address; another
    # loopback address is published, or parents on this machine could not reach the service.
    for host in ("127.0.0.1", "localhost"):
        assert advertised_address(host, None) is None
    for host in ("127.0.0.2", "127.1.2.3", "::1", "[::1]"):
        assert advertised_address(host, None) == host


def test_host_patterns_refuse_a_trailing_newline():
    from multifrost._advertise import is_advertised_host

    assert is_advertised_host("10.0.0.1") and not is_advertised_host("10.0.0.1\n")
    with pytest.raises(ValueError, match="host name or an IP address"):
        advertised_address("127.0.0.1", "svc.example.org\n")
    with pytest.raises(ValueError, match="not loopback"):
        check_bind("127.0.0.1\n", False)


def test_advertise_wins_else_a_non_loopback_host_is_published():
    assert advertised_address("127.0.0.1", "svc.example.org") == "svc.example.org"
    assert advertised_address("10.0.0.4", None) == "10.0.0.4"
    assert advertised_address("0.0.0.0", "10.0.0.9") == "10.0.0.9"


def test_a_wildcard_host_publishes_the_first_external_ipv4_address():
    address = first_external_ipv4()
    if address is None:
        with pytest.raises(ValueError, match="give advertise"):
            advertised_address("0.0.0.0", None)
        return
    assert not address.startswith("127.")
    assert advertised_address("0.0.0.0", None) == address
    assert advertised_address("*", None) == address


def test_a_bad_advertise_is_refused():
    with pytest.raises(ValueError, match="not the wildcard"):
        advertised_address("127.0.0.1", "0.0.0.0")
    with pytest.raises(ValueError, match="host name or an IP address"):
        advertised_address("127.0.0.1", "tcp://10.0.0.1:5")
    with pytest.raises(ValueError, match="host name or an IP address"):
        advertised_address("127.0.0.1", "")


def test_binding_beyond_loopback_needs_insecure():
    check_bind("127.0.0.1", False)
    check_bind("localhost", False)
    check_bind("0.0.0.0", True)
    with pytest.raises(ValueError, match=r"insecure=True"):
        check_bind("0.0.0.0", False)
    with pytest.raises(ValueError, match=r"binding 10\.0\.0\.1 \(not loopback\) without CURVE"):
        Svc("svc", host="10.0.0.1")


def test_the_file_registry_stores_a_published_address_as_advertise(tmp_path):
    registry = FileRegistry(tmp_path)
    entry = registry.register("far", 5100, host="10.0.0.8")
    registry.register("near", 5101)
    stored = json.loads((tmp_path / "services.json").read_text())
    assert stored["far"]["advertise"] == "10.0.0.8" and "host" not in stored["far"]
    assert "advertise" not in stored["near"] and "host" not in stored["near"]
    assert entry["host"] == "10.0.0.8"
    assert registry.lookup("far")["host"] == "10.0.0.8"
    assert "host" not in registry.lookup("near")


def test_the_file_registry_reads_what_the_ts_side_writes(tmp_path):
    key = "rq:rPspD8c$Qe0Ed4*=PfWFn+2JEw&6wyx4[hC5%"
    (tmp_path / "services.json").write_text(
        json.dumps({"svc": {"port": 5200, "pid": 1, "started": "x", "publicKey": key, "advertise": "10.1.1.1", "host": "ignored"}})
    )
    (tmp_path / "services.json").chmod(0o600)
    tmp_path.chmod(0o700)
    assert FileRegistry(tmp_path).lookup("svc") == {"port": 5200, "pid": 1, "started": "x", "publicKey": key, "host": "10.1.1.1"}


def run_until_registered(worker, registry, name):
    errors = []

    def serve():
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        return registry.discover(name, timeout=5)
    finally:
        worker.stop()
        thread.join(10)
        assert errors == []


def test_a_service_on_every_interface_publishes_an_address_parents_can_reach(tmp_path):
    if first_external_ipv4() is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    registry = FileRegistry(tmp_path)
    entry = run_until_registered(Svc("wide", host="0.0.0.0", insecure=True, registry=registry), registry, "wide")
    assert entry["host"] == first_external_ipv4()


def test_a_loopback_service_with_advertise_publishes_it_and_a_plain_one_nothing(tmp_path):
    registry = FileRegistry(tmp_path)
    assert run_until_registered(Svc("named", advertise="svc.internal", registry=registry), registry, "named")["host"] == "svc.internal"
    assert "host" not in run_until_registered(Svc("plain", registry=f"file://{tmp_path}"), registry, "plain")
