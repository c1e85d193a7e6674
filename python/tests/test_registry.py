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


def test_service_id_length_counts_utf16_units_and_lone_surrogates_are_refused(tmp_path):
    # As assertServiceId (src/registry/registry.ts): JavaScript's length, and well-formed Unicode.
    from multifrost.registry import check_service_id

    assert check_service_id("x" * 256) and check_service_id("é" * 256)
    assert check_service_id("\U0001f600" * 128)  # 256 UTF-16 units
    with pytest.raises(ValueError, match=r"at most 256 characters \(got 258\)"):
        check_service_id("\U0001f600" * 129)  # 129 code points, 258 units: TS refuses it
    for bad in ("a\ud800b", "\udc00", "\ud83d\ude00"):  # in a Python str even a "pair" is two lone surrogates
        with pytest.raises(ValueError, match="well-formed Unicode"):
            FileRegistry(tmp_path).register(bad, 9000)


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


# -- hardening (issue 10): trust, pid reuse, bounded reads ------------------------------------

import subprocess  # noqa: E402

from multifrost.registry import process_start_time  # noqa: E402

IS_ROOT = os.getuid() == 0
SETTLED = 1767225600  # 2026-01-01: out of the window in which a parse is not cached


def start_time_of(pid):
    """Field 22 of /proc/<pid>/stat, read here independently of the library."""
    text = open(f"/proc/{pid}/stat").read()
    return int(text[text.rfind(")") + 2 :].split(" ")[19])


def nobody():
    return int(subprocess.check_output(["id", "-u", "nobody"])), int(subprocess.check_output(["id", "-g", "nobody"]))


def write_raw(tmp_path, document, mode=0o600):
    path = tmp_path / "services.json"
    path.write_text(json.dumps(document, indent=2))
    path.chmod(mode)
    return path


def expect_refused(registry, pattern):
    for attempt in (
        lambda: registry.lookup("svc"),
        lambda: registry.list(),
        lambda: registry.discover("svc", timeout=1),
        lambda: registry.register("svc", 5001),
        lambda: registry.unregister("svc"),
    ):
        with pytest.raises(RegistryError, match=pattern):
            attempt()


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.skipif(not IS_ROOT, reason="needs root to chown to nobody")
def test_a_directory_or_file_owned_by_nobody_is_refused(tmp_path):
    uid, gid = nobody()
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    write_raw(foreign, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    os.chown(foreign, uid, gid)
    expect_refused(
        FileRegistry(foreign),
        rf"refusing the registry directory {re.escape(str(foreign))} \(owner uid {uid}, mode 0700\): "
        rf"it is not owned by this process's uid {os.getuid()}",
    )
    os.chown(foreign, os.getuid(), os.getgid())
    os.chown(foreign / "services.json", uid, gid)
    expect_refused(FileRegistry(foreign), rf"registry file .*services.json \(owner uid {uid}, mode 0600\)")


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_directory_group_or_others_may_write_is_refused_and_left_alone(tmp_path, mode):
    write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    tmp_path.chmod(mode)
    expect_refused(FileRegistry(tmp_path), rf"\(owner uid {os.getuid()}, mode {mode:04o}\): group or others may write it")
    assert tmp_path.stat().st_mode & 0o7777 == mode


def test_a_directory_readable_by_others_is_read_as_is_and_narrowed_on_update(tmp_path):
    write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    tmp_path.chmod(0o755)
    assert FileRegistry(tmp_path).lookup("svc")["port"] == 5001
    assert tmp_path.stat().st_mode & 0o777 == 0o755
    FileRegistry(tmp_path).register("other", 5002)
    assert tmp_path.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o620, 0o660, 0o602])
def test_a_file_group_or_others_may_write_is_refused(tmp_path, mode):
    tmp_path.chmod(0o700)
    write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}}, mode)
    expect_refused(FileRegistry(tmp_path), rf"registry file .*\(owner uid {os.getuid()}, mode {mode:04o}\): group or others")


def test_pid_start_is_recorded_for_us_and_for_another_pid(tmp_path, sleeper):
    registry = FileRegistry(tmp_path)
    assert registry.register("mine", 5001)["pidStart"] == start_time_of(os.getpid())
    assert registry.register("theirs", 5002, pid=sleeper.pid)["pidStart"] == start_time_of(sleeper.pid)
    assert read(tmp_path)["theirs"]["pidStart"] == process_start_time(sleeper.pid)


def test_a_reused_pid_counts_as_dead_and_the_right_start_time_as_alive(tmp_path, sleeper):
    registry = FileRegistry(tmp_path)
    for unrelated in (os.getpid(), sleeper.pid):
        write_raw(tmp_path, {"svc": {"port": 5001, "pid": unrelated, "started": "", "pidStart": start_time_of(unrelated) - 1}})
        assert registry.lookup("svc") is None and registry.list() == {}
        with pytest.raises(ServiceNotFoundError):
            registry.discover("svc", timeout=0.3)
        assert registry.register("svc", 5002, pid=os.getppid())["port"] == 5002  # the dead owner's id is free
    write_raw(tmp_path, {"svc": {"port": 5003, "pid": sleeper.pid, "started": "", "pidStart": start_time_of(sleeper.pid)}})
    assert registry.lookup("svc")["port"] == 5003
    with pytest.raises(ServiceAlreadyRunningError):
        registry.register("svc", 5004)


def test_an_entry_without_pid_start_is_judged_by_pid_and_a_zombie_is_dead(tmp_path, sleeper):
    registry = FileRegistry(tmp_path)
    write_raw(tmp_path, {"v4": {"port": 5001, "pid": sleeper.pid, "started": "2026-03-13T10:11:12.123456"}})
    assert registry.lookup("v4") == {"port": 5001, "pid": sleeper.pid, "started": "2026-03-13T10:11:12.123456"}
    sleeper.kill()
    time.sleep(0.2)  # exited, not yet reaped by us: a zombie
    assert open(f"/proc/{sleeper.pid}/stat").read().split(") ")[1].startswith("Z")
    assert registry.lookup("v4") is None


def test_a_50_mb_file_is_refused_fast_without_reading_it(tmp_path):
    path = tmp_path / "services.json"
    with open(path, "wb") as handle:
        handle.write(b'{"svc": {"port": 5001, "pid": 1, "started": "')
        chunk = b" " * (1024 * 1024)
        for _ in range(50):
            handle.write(chunk)
        handle.write(b'"}}')
    path.chmod(0o600)
    registry = FileRegistry(tmp_path)

    def rss():
        return int(re.search(r"VmRSS:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

    before = rss()
    started = time.monotonic()
    for _ in range(100):
        with pytest.raises(RegistryError, match=r"bytes is more than max_file_bytes \(4194304\); it was not read"):
            registry.lookup("svc")
    elapsed = time.monotonic() - started
    assert rss() - before < 20 * 1024 * 1024
    assert elapsed < 1
    assert registry.counters["parses"] == 0
    with pytest.raises(RegistryError):
        registry.register("other", 5002)


def test_max_file_bytes_caps_reads_and_writes(tmp_path):
    registry = FileRegistry(tmp_path, max_file_bytes=200)
    path = write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    path.write_text(path.read_text() + " " * (200 - path.stat().st_size))
    assert registry.lookup("svc")["port"] == 5001
    with open(path, "a") as handle:
        handle.write(" ")
    with pytest.raises(RegistryError, match=r"201 bytes is more than max_file_bytes \(200\)"):
        registry.lookup("svc")
    path.unlink()
    registry.register("a", 5001)
    with pytest.raises(RegistryError, match=r"would exceed max_file_bytes \(200\)"):
        registry.register("b" * 150, 5002)
    assert list(read(tmp_path)) == ["a"]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            FileRegistry(tmp_path, max_file_bytes=bad)


def test_an_unchanged_file_is_parsed_once(tmp_path):
    path = write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    os.utime(path, (SETTLED, SETTLED))
    registry = FileRegistry(tmp_path)
    for _ in range(1000):
        assert registry.lookup("svc") is not None
    assert registry.counters == {"stats": 1000, "parses": 1, "cache_hits": 999}


def test_every_change_is_noticed(tmp_path):
    registry = FileRegistry(tmp_path)
    path = write_raw(tmp_path, {"svc": {"port": 5001, "pid": os.getpid(), "started": ""}})
    os.utime(path, (SETTLED, SETTLED))
    assert registry.lookup("svc")["port"] == 5001
    write_raw(tmp_path, {"svc": {"port": 5002, "pid": os.getpid(), "started": ""}})  # in place, same size
    os.utime(path, (SETTLED, SETTLED))  # same mtime too: the ctime tells
    assert registry.lookup("svc")["port"] == 5002
    parses = registry.counters["parses"]
    write_raw(tmp_path, {"svc": {"port": 5003, "pid": os.getpid(), "started": ""}})  # just written: never cached
    for _ in range(3):
        assert registry.lookup("svc")["port"] == 5003
    assert registry.counters["parses"] - parses == 3
