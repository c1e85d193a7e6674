import json
import multiprocessing
import os
import re
import time

import pytest

from multifrost.registry import (
    FileRegistry,
    RegistryError,
    ServiceAlreadyRunningError,
    ServiceNotFoundError,
)


def dead_pid():
    process = multiprocessing.get_context("fork").Process(target=lambda: None)
    process.start()
    process.join()
    return process.pid


def read(tmp_path):
    return json.loads((tmp_path / "services.json").read_text())


def test_register_writes_the_v4_format_and_releases_both_locks(tmp_path):
    registry = FileRegistry(tmp_path)
    entry = registry.register("svc", 5555)
    assert entry["pid"] == os.getpid() and entry["port"] == 5555
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["started"])
    assert read(tmp_path) == {"svc": entry}
    assert not (tmp_path / "services.json.lock").exists()
    assert not (tmp_path / "services.lock").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["services.json"]  # no temp file left
    assert oct(tmp_path.stat().st_mode & 0o777) == "0o700"
    assert registry.lookup("svc") == entry and registry.list() == {"svc": entry}


def test_directory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIFROST_REGISTRY_DIR", str(tmp_path / "sub"))
    FileRegistry().register("env-svc", 6000)
    assert "env-svc" in json.loads((tmp_path / "sub" / "services.json").read_text())


def test_a_live_owner_keeps_its_id_a_dead_one_is_replaced(tmp_path):
    registry = FileRegistry(tmp_path)
    registry.register("taken", 7000, pid=os.getppid())
    with pytest.raises(ServiceAlreadyRunningError, match=r"already running \(PID: \d+, port: 7000\)"):
        registry.register("taken", 7001)
    registry.register("stale", 7002, pid=dead_pid())
    assert registry.lookup("stale") is None
    assert registry.register("stale", 7003)["port"] == 7003
    assert registry.register("stale", 7004)["port"] == 7004  # our own entry: replaced


def test_unregister_removes_only_our_own_entry(tmp_path):
    registry = FileRegistry(tmp_path)
    registry.register("other", 7100, pid=os.getppid())
    registry.register("mine", 7101)
    assert registry.unregister("other") is False
    assert registry.unregister("mine") is True
    assert registry.unregister("mine") is False
    assert list(read(tmp_path)) == ["other"]


def test_unknown_keys_and_other_entries_survive_a_rewrite(tmp_path):
    (tmp_path / "services.json").write_text(json.dumps({
        "keep": {"port": 8000, "pid": os.getppid(), "started": "2026-01-01T00:00:00", "extra": [1]},
        "invalid": {"port": "nope"},
    }))
    FileRegistry(tmp_path).register("new", 8001)
    document = read(tmp_path)
    assert document["keep"]["extra"] == [1] and "invalid" not in document and "new" in document


def test_a_corrupt_file_is_set_aside(tmp_path, capsys):
    (tmp_path / "services.json").write_text("{not json")
    FileRegistry(tmp_path).register("svc", 8100)
    assert list(read(tmp_path)) == ["svc"]
    assert any(p.name.startswith("services.json.corrupt-") for p in tmp_path.iterdir())


def test_stale_python_lock_of_a_dead_process_is_removed(tmp_path):
    (tmp_path / "services.lock").write_text(str(dead_pid()))
    FileRegistry(tmp_path, lock_timeout=2).register("svc", 8200)
    assert not (tmp_path / "services.lock").exists()


def test_a_held_python_lock_is_waited_for_then_reported(tmp_path):
    (tmp_path / "services.lock").write_text(str(os.getppid()))  # a live holder
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"still held after 0.3s by pid"):
        FileRegistry(tmp_path, lock_timeout=0.3).register("svc", 8300)
    assert time.monotonic() - started < 2
    assert not (tmp_path / "services.json.lock").exists()  # the JS lock was released


def test_js_lock_directory_excludes_us_until_stale(tmp_path):
    lock = tmp_path / "services.json.lock"
    lock.mkdir()
    with pytest.raises(RegistryError, match=r"services.json.lock was still held"):
        FileRegistry(tmp_path, lock_timeout=0.2).register("svc", 8400)
    old = time.time() - 60
    os.utime(lock, (old, old))  # proper-lockfile's holder refreshes it every 5 s: this one is dead
    FileRegistry(tmp_path, lock_timeout=2).register("svc", 8400)
    assert not lock.exists()


def test_discover_waits_for_the_entry_and_times_out(tmp_path):
    registry = FileRegistry(tmp_path)
    with pytest.raises(ServiceNotFoundError):
        registry.discover("absent", timeout=0.2)
    registry.register("present", 8500)
    assert registry.discover("present", timeout=0)["port"] == 8500


def test_invalid_service_ids_are_refused(tmp_path):
    registry = FileRegistry(tmp_path)
    for bad in ("", "a\nb", "x" * 257):
        with pytest.raises(ValueError):
            registry.register(bad, 9000)


def _register_many(directory, index, barrier):
    barrier.wait()
    FileRegistry(directory).register(f"svc-{index}", 10000 + index)


def test_twenty_processes_registering_at_once_all_land(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(20)
    processes = [context.Process(target=_register_many, args=(str(tmp_path), i, barrier)) for i in range(20)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert [p.exitcode for p in processes] == [0] * 20
    document = read(tmp_path)
    assert sorted(document) == sorted(f"svc-{i}" for i in range(20))
    assert {document[f"svc-{i}"]["port"] for i in range(20)} == {10000 + i for i in range(20)}
