"""CURVE for connect-mode services (`curve=`), with src/actors/curve.ts's semantics: the options and
key files, the public key in the registry entry, and who gets an answer — a CURVE client with an
authorized key does; an unauthorized key and a plain client get nothing."""

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import msgpack
import pytest
import zmq
import zmq.utils.z85

from etcd_server import ETCD, TestEtcd
from multifrost import ChildWorker, FileRegistry, curve_key_pair, load_curve_keys, open_registry, save_curve_keys
from multifrost._curve import load_authorized_keys, resolve_service_curve, z85_encode

APP = "comlink_ipc_v4"
#: How long a refused client waits for an answer that must not come.
REFUSED_WAIT_MS = 1500

SERVER = curve_key_pair()
ALICE = curve_key_pair()
MALLORY = curve_key_pair()


class Svc(ChildWorker):
    def add(self, a, b):
        return a + b


# -- the option ---------------------------------------------------------------------------------


def test_a_key_pair_is_accepted_with_python_or_ts_names():
    curve = resolve_service_curve({**SERVER, "authorized_keys": [ALICE["public_key"]]})
    assert (curve.public_key, curve.secret_key, curve.authorized_keys) == (SERVER["public_key"], SERVER["secret_key"], {ALICE["public_key"]})
    ts = resolve_service_curve({"publicKey": SERVER["public_key"], "secretKey": SERVER["secret_key"], "authorizedKeys": []})
    assert ts.authorized_keys == frozenset()  # an empty list admits nobody, as in TS
    assert resolve_service_curve(SERVER).authorized_keys is None  # none given: any CURVE client
    assert SERVER["secret_key"] not in repr(ts)


def test_bad_keys_are_value_errors_naming_the_option():
    with pytest.raises(ValueError, match=r"curve\.public_key must be a 40-character Z85 CURVE key, got 39 characters"):
        resolve_service_curve({**SERVER, "public_key": SERVER["public_key"][:-1]})
    with pytest.raises(ValueError, match=r"curve\.secret_key must be a 40-character Z85 CURVE key, got 40 characters that are not Z85"):
        resolve_service_curve({**SERVER, "secret_key": "~" * 40})
    with pytest.raises(ValueError, match=r"curve\.secret_key .* got 40 characters that are not Z85"):
        resolve_service_curve({**SERVER, "secret_key": "#" * 40})  # Z85 characters, but 5 of them exceed 32 bits
    with pytest.raises(ValueError, match=r"curve\.secret_key .* got bytes"):
        resolve_service_curve({**SERVER, "secret_key": SERVER["secret_key"].encode()})
    with pytest.raises(ValueError, match=r"curve\.authorized_keys\[1\] must be a 40-character Z85"):
        resolve_service_curve({**SERVER, "authorized_keys": [ALICE["public_key"], "nope"]})
    with pytest.raises(ValueError, match=r"curve\.authorized_keys must be a list"):
        resolve_service_curve({**SERVER, "authorized_keys": ALICE["public_key"]})


def test_a_pair_that_does_not_match_or_is_incomplete_is_refused():
    with pytest.raises(ValueError, match=r"curve\.public_key is not the public key of curve\.secret_key"):
        resolve_service_curve({"public_key": ALICE["public_key"], "secret_key": SERVER["secret_key"]})
    with pytest.raises(ValueError, match=r"curve needs secret_key"):
        resolve_service_curve({"public_key": SERVER["public_key"]})
    with pytest.raises(ValueError, match=r"both public_key and publicKey"):
        resolve_service_curve({**SERVER, "publicKey": SERVER["public_key"]})
    with pytest.raises(ValueError, match=r"unknown keys \['serverPublicKey'\]"):
        resolve_service_curve({**SERVER, "serverPublicKey": SERVER["public_key"]})
    with pytest.raises(ValueError, match=r"curve must be a key pair"):
        Svc("svc", curve=42)


def test_with_curve_a_non_loopback_host_needs_no_insecure():
    Svc("svc", host="0.0.0.0", advertise="10.0.0.7", curve=SERVER)
    with pytest.raises(ValueError, match=r"give curve keys \(curve=\), or insecure=True"):
        Svc("svc", host="0.0.0.0", advertise="10.0.0.7")


# -- key files ----------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """A keys directory of this test's own, as $MULTIFROST_KEYS_DIR."""
    folder = tmp_path / "keys"
    monkeypatch.setenv("MULTIFROST_KEYS_DIR", str(folder))
    return folder


def test_key_files_are_written_as_multifrost_keygen_writes_them(keys):
    files = save_curve_keys("svc", SERVER)
    assert files == {"public_file": str(keys / "svc.pub"), "secret_file": str(keys / "svc.key")}
    assert (keys / "svc.pub").read_text() == SERVER["public_key"] + "\n"
    assert (keys / "svc.key").read_text() == SERVER["secret_key"] + "\n"
    assert stat.S_IMODE((keys / "svc.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert load_curve_keys("svc") == SERVER


def test_a_secret_key_others_can_read_is_refused(keys):
    save_curve_keys("svc", SERVER)
    (keys / "svc.key").chmod(0o644)
    with pytest.raises(ValueError, match=r"svc\.key is accessible to group or others \(mode 0644\): chmod 600 it"):
        load_curve_keys("svc")


def test_a_service_names_its_key_pair_and_reads_authorized_keys_there(keys):
    save_curve_keys("svc", SERVER)
    assert Svc("svc", curve="svc")._mf_settings.curve.authorized_keys is None  # no file: any CURVE client
    (keys / "authorized_keys").write_text(f"# parents\n{ALICE['public_key']}  # web-1\n\n   \n{MALLORY['public_key']}\n")
    curve = Svc("svc", curve="svc")._mf_settings.curve
    assert (curve.public_key, curve.authorized_keys) == (SERVER["public_key"], {ALICE["public_key"], MALLORY["public_key"]})


def test_missing_or_bad_key_files_are_clear_errors(keys):
    with pytest.raises(ValueError, match=rf"curve='ghost': cannot read CURVE key file {re.escape(str(keys))}/ghost\.pub: No such file"):
        Svc("svc", curve="ghost")
    save_curve_keys("svc", SERVER)
    (keys / "svc.key").unlink()
    with pytest.raises(ValueError, match=r"cannot read CURVE key file .*/svc\.key: No such file"):
        Svc("svc", curve="svc")
    save_curve_keys("svc", SERVER)
    (keys / "svc.key").write_text("not a key\n")
    with pytest.raises(ValueError, match=r"svc\.key must be a 40-character Z85 CURVE key, got 9 characters"):
        Svc("svc", curve="svc")
    save_curve_keys("svc", SERVER)
    (keys / "authorized_keys").write_text(f"{ALICE['public_key']}\n# next\nABC\n")
    with pytest.raises(ValueError, match=r"authorized_keys line 3 must be a 40-character Z85"):
        Svc("svc", curve="svc")  # a typo does not open the service to every client
    with pytest.raises(ValueError, match=r"a key name must be letters"):
        Svc("svc", curve="../svc")


def test_a_hash_inside_a_key_is_part_of_it_not_a_comment(keys):
    # Z85 has '#' among its characters: about one key in three holds one.
    hashed = next(pair["public_key"] for pair in iter(curve_key_pair, None) if "#" in pair["public_key"][1:])
    keys.mkdir()
    (keys / "authorized_keys").write_text(f"#{ALICE['public_key']}\n{hashed}\n{hashed} # with a comment\n  # {MALLORY['public_key']}\n")
    assert load_authorized_keys() == [hashed, hashed]
    (keys / "authorized_keys").write_text(f"{hashed} {ALICE['public_key']}\n")
    with pytest.raises(ValueError, match=r"authorized_keys line 1: one key a line"):
        load_authorized_keys()


def test_an_empty_authorized_keys_admits_nobody(keys):
    (keys).mkdir()
    (keys / "authorized_keys").write_text("# nobody yet\n")
    assert load_authorized_keys() == []


# -- the registry entry ---------------------------------------------------------------------------


def test_the_file_registry_stores_the_public_key_as_the_ts_side_does(tmp_path):
    registry = FileRegistry(tmp_path)
    entry = registry.register("vault", 5300, public_key=SERVER["public_key"], host="10.0.0.8")
    stored = json.loads((tmp_path / "services.json").read_text())["vault"]
    assert stored["publicKey"] == SERVER["public_key"] and stored["advertise"] == "10.0.0.8"
    assert entry["publicKey"] == registry.lookup("vault")["publicKey"] == SERVER["public_key"]
    with pytest.raises(ValueError, match=r"public_key must be a 40-character Z85"):
        registry.register("vault", 5300, public_key="short")


def test_a_curve_service_on_etcd_publishes_its_public_key():
    if not os.access(ETCD, os.X_OK):
        pytest.skip(f"no etcd at {ETCD} (scripts/setup.sh installs etcd-server)")
    etcd = TestEtcd()
    try:
        etcd.start()
        url = etcd.url(f"pycurve{os.getpid()}", "ttl=5")
        worker = Svc("vault", registry=url, curve=SERVER)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        reader = open_registry(url)
        try:
            entry = reader.discover("vault", timeout=10)
            assert entry["publicKey"] == SERVER["public_key"]
        finally:
            worker.stop()
            thread.join(10)
            reader.close()
    finally:
        etcd.remove()


# -- who gets an answer ---------------------------------------------------------------------------


class CurveService:
    """A CURVE service serving in a background thread on a temporary file registry."""

    def __init__(self, tmp_path, curve, name="vault"):
        self.registry = FileRegistry(tmp_path)
        self.worker = Svc(name, registry=self.registry, curve=curve)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()
        self.entry = self.registry.discover(name, timeout=5)
        self.context = zmq.Context()
        self.sockets = []

    def client(self, keys=None, server_key=None):
        """A DEALER: a CURVE client with `keys` (the server key from the entry), else plain."""
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            sock.curve_serverkey = (server_key or self.entry["publicKey"]).encode()
            sock.curve_publickey = keys["public_key"].encode()
            sock.curve_secretkey = keys["secret_key"].encode()
        self.sockets.append(sock)
        return sock

    def add(self, sock, a, b, wait_ms=5000):
        """The result of add(a, b), or None when no answer came within `wait_ms`."""
        sock.connect(f"tcp://127.0.0.1:{self.entry['port']}")
        call = {"app": APP, "id": uuid.uuid4().hex, "type": "call", "timestamp": time.time(), "function": "add", "args": [a, b]}
        sock.send_multipart([b"", msgpack.packb(call)])
        if not sock.poll(wait_ms):
            return None
        return msgpack.unpackb(sock.recv_multipart()[-1])["result"]

    def close(self):
        for sock in self.sockets:
            sock.close(linger=0)
        self.context.term()
        self.worker.stop()
        self.thread.join(10)


@pytest.fixture
def services(tmp_path):
    started = []

    def start(curve, name="vault"):
        service = CurveService(tmp_path, curve, name)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def test_a_curve_service_publishes_its_public_key(services):
    service = services({**SERVER, "authorized_keys": [ALICE["public_key"]]})
    assert service.entry["publicKey"] == SERVER["public_key"]
    assert "host" not in service.entry  # loopback: no address published, as without CURVE


def test_an_authorized_curve_client_gets_an_answer(services):
    service = services({**SERVER, "authorized_keys": [ALICE["public_key"]]})
    assert service.add(service.client(ALICE), 2, 3) == 5
    assert service.worker.stats["curve_refused"] == 0


def test_an_unauthorized_key_gets_nothing_and_its_handshake_fails_at_once(services):
    service = services({**SERVER, "authorized_keys": [ALICE["public_key"]]})
    mallory = service.client(MALLORY)
    monitor = mallory.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    try:
        assert service.add(mallory, 2, 3, wait_ms=REFUSED_WAIT_MS) is None
        assert monitor.poll(REFUSED_WAIT_MS), "the client was not told its key was refused"
        assert service.worker.stats["curve_refused"] >= 1
        assert service.worker.stats["calls_received"] == 0
    finally:
        mallory.disable_monitor()
        monitor.close(linger=0)
    assert service.add(service.client(ALICE), 1, 1) == 2  # the refusal did not disturb the service


def test_a_plain_client_gets_nothing(services):
    service = services(SERVER)
    assert service.add(service.client(), 2, 3, wait_ms=REFUSED_WAIT_MS) is None
    assert service.worker.stats["calls_received"] == 0


def test_a_client_with_the_wrong_server_key_gets_nothing(services):
    service = services(SERVER)
    impostor = curve_key_pair()["public_key"]
    assert service.add(service.client(ALICE, server_key=impostor), 2, 3, wait_ms=REFUSED_WAIT_MS) is None


def test_without_authorized_keys_any_curve_client_is_answered(services):
    service = services(SERVER)
    assert service.add(service.client(MALLORY), 20, 22) == 42
    assert service.add(service.client(curve_key_pair()), 1, 2) == 3


def test_two_curve_services_in_one_process_keep_their_own_authorized_keys(services):
    # Each Runtime has a context of its own, hence a ZAP endpoint of its own.
    alices = services({**SERVER, "authorized_keys": [ALICE["public_key"]]}, name="alices")
    mallorys = services({**curve_key_pair(), "authorized_keys": [MALLORY["public_key"]]}, name="mallorys")
    assert alices.add(alices.client(ALICE), 1, 2) == 3
    assert mallorys.add(mallorys.client(MALLORY), 3, 4) == 7
    assert alices.add(alices.client(MALLORY), 1, 2, wait_ms=REFUSED_WAIT_MS) is None
    assert mallorys.add(mallorys.client(ALICE), 1, 2, wait_ms=REFUSED_WAIT_MS) is None


def test_z85_encode_matches_pyzmq():
    raw = os.urandom(32)
    assert z85_encode(raw) == zmq.utils.z85.encode(raw).decode()


# -- spawn mode -----------------------------------------------------------------------------------


SPAWNED = textwrap.dedent("""
    import json, os
    from multifrost import ChildWorker
    class W(ChildWorker):
        def add(self, a, b):
            return a + b
    W("svc", curve=json.loads(os.environ["MF_CURVE"]), disconnect_grace=0.5).run()
""")


def test_spawn_mode_ignores_curve(parent_dealer):
    """A parent that spawns the worker talks to it in plain ZeroMQ, as the TS ChildWorker does."""
    dealer, port = parent_dealer
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__import__("multifrost").__file__)))
    env.update(COMLINK_ZMQ_PORT=port, MF_CURVE=json.dumps(SERVER))
    process = subprocess.Popen([sys.executable, "-c", SPAWNED], env=env, stderr=subprocess.PIPE, text=True)
    try:
        call = {"app": APP, "id": "c", "type": "call", "timestamp": time.time(), "function": "add", "args": [1, 2]}
        dealer.send_multipart([b"", msgpack.packb(call)])
        assert dealer.poll(10_000), process.stderr.read() if process.poll() is not None else "no reply"
        assert msgpack.unpackb(dealer.recv_multipart()[-1])["result"] == 3
        dealer.close()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


# -- the review's findings: trailing newlines, echoed secrets, None, byte order marks --------------


def test_a_key_with_a_trailing_newline_is_a_value_error():
    from multifrost._curve import check_z85_key

    with pytest.raises(ValueError, match=r"curve\.public_key must be a 40-character Z85 CURVE key, got 41 characters"):
        check_z85_key(SERVER["public_key"] + "\n", "curve.public_key")
    with pytest.raises(ValueError, match=r"must be a 40-character Z85 CURVE key"):
        resolve_service_curve({**SERVER, "authorized_keys": [ALICE["public_key"] + "\n"]})


def test_a_key_name_with_a_trailing_newline_is_refused(keys):
    save_curve_keys("svc", SERVER)
    with pytest.raises(ValueError, match=r"a key name must be letters"):
        load_curve_keys("svc\n")


def test_a_secret_key_given_as_a_name_is_never_echoed(keys):
    secret = SERVER["secret_key"]
    for given in (secret, secret + "\n", f" {secret}"):
        with pytest.raises(ValueError, match=r"looks like a 40-character Z85 key, not a key name") as caught:
            Svc("svc", curve=given)
        assert secret not in str(caught.value)
        with pytest.raises(ValueError) as caught:
            load_curve_keys(given)
        assert secret not in str(caught.value)


def test_authorized_keys_none_is_refused_only_a_missing_key_admits_any_client():
    assert resolve_service_curve(SERVER).authorized_keys is None
    for name in ("authorized_keys", "authorizedKeys"):
        with pytest.raises(ValueError, match=r"curve\.authorized_keys is None"):
            resolve_service_curve({**SERVER, name: None})
        with pytest.raises(ValueError, match=r"curve\.authorized_keys is None"):
            Svc("svc", curve={**SERVER, name: None})


def test_key_files_may_start_with_a_byte_order_mark(keys):
    save_curve_keys("svc", SERVER)
    for name, key in (("svc.pub", SERVER["public_key"]), ("svc.key", SERVER["secret_key"])):
        (keys / name).write_text(f"\ufeff{key}\n", encoding="utf-8")
    (keys / "authorized_keys").write_text(f"\ufeff{ALICE['public_key']}\n", encoding="utf-8")
    assert load_curve_keys("svc") == SERVER
    assert load_authorized_keys() == [ALICE["public_key"]]
    assert Svc("svc", curve="svc")._mf_settings.curve.authorized_keys == {ALICE["public_key"]}
