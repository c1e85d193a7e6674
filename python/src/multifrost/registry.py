"""The v4 file registry (`services.json`), shared with the TypeScript side and with JS/Python v4.

Same file, format, locks and rules as src/registry/*.ts: `{"<id>": {"port", "pid", "started",
"pidStart"[, "publicKey"][, "advertise"]}}` (`publicKey`: a CURVE service's key; `advertise`: a
service's non-loopback address) in `$MULTIFROST_REGISTRY_DIR` or `~/.multifrost`; every update is a read-modify-write
under JS v4's lock directory (`services.json.lock`, proper-lockfile's) and Python v4's
`services.lock` (created exclusively with the owner's pid inside), always taken in that order; the
file is replaced atomically (temp file, fsync, rename). Reads take no lock.

Trust: the directory and the file must be owned by this process's uid (root included) and not
writable by group or others, else RegistryError. `pidStart` is the owner's start time (field 22 of
/proc/<pid>/stat, clock ticks since boot); an entry whose pid now has another start time, or is a
zombie, is dead. A file above `max_file_bytes` (default 4 MiB) is refused from its stat, unread;
an unchanged file (same dev, inode, size, mtime ns, ctime ns) is not parsed again.

The locks are in _registry_locks.py, the owner checks in _liveness.py, the errors in
_registry_errors.py; this module re-exports what they offer.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import sys
import time
from typing import Any, Callable, Final, TypeVar

from ._advertise import is_advertised_host
from ._curve import check_z85_key
from ._liveness import is_owner_alive, is_process_alive, process_start_time
from ._registry_errors import RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError
from ._registry_locks import JS_LOCK_STALE_S, UNREADABLE_PYTHON_LOCK_STALE_S, JsLock, acquire_python_lock, process_lock

__all__ = [
    "JS_LOCK_STALE_S",
    "UNREADABLE_PYTHON_LOCK_STALE_S",
    "FileRegistry",
    "RegistryError",
    "ServiceAlreadyRunningError",
    "ServiceNotFoundError",
    "assert_trusted",
    "check_service_id",
    "is_owner_alive",
    "is_process_alive",
    "parse_registry",
    "process_start_time",
    "to_entry",
    "write_registry_file",
]

REGISTRY_DIR_ENV: Final = "MULTIFROST_REGISTRY_DIR"
REGISTRY_FILE_NAME: Final = "services.json"
PYTHON_LOCK_FILE_NAME: Final = "services.lock"
DEFAULT_LOCK_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_FILE_BYTES: Final = 4 * 1024 * 1024
#: A file modified this recently may be rewritten in place within the same timestamp tick without
#: changing size or mtime (JS v4 writes in place), so its parse is not cached.
RACY_WINDOW_NS: Final = 1_000_000_000
DISCOVER_POLL_S: Final = 0.1
MAX_SERVICE_ID_LENGTH: Final = 256
_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
_SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")


def assert_trusted(kind: str, path: str, info: os.stat_result) -> None:
    """Refuses a registry directory or file not owned by this uid, or writable by group/others."""
    uid = os.getuid()
    mode = info.st_mode & 0o7777
    shown = f"owner uid {info.st_uid}, mode {mode:04o}"
    if info.st_uid != uid:
        raise RegistryError(
            f"refusing the registry {kind} {path} ({shown}): it is not owned by this process's uid {uid}; "
            "use a registry directory of your own (the dir option or MULTIFROST_REGISTRY_DIR)"
        )
    if mode & 0o022:
        raise RegistryError(
            f"refusing the registry {kind} {path} ({shown}): group or others may write it; "
            f"run chmod {'700' if kind == 'directory' else '600'} on it if you trust its content"
        )


def _is_pid_start(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53 - 1


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _is_pid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 0x7FFFFFFF


def check_service_id(service_id: Any) -> str:
    if not isinstance(service_id, str) or service_id == "":
        raise ValueError("service_id must be a non-empty string")
    # Counted as JavaScript counts (UTF-16 code units), so that both sides accept the same ids.
    length = len(service_id.encode("utf-16-le", "surrogatepass")) // 2
    if length > MAX_SERVICE_ID_LENGTH:
        raise ValueError(f"service_id must be at most {MAX_SERVICE_ID_LENGTH} characters (got {length})")
    if _CONTROL.search(service_id):
        raise ValueError(f"service_id must not contain control characters: {service_id!r}")
    if _SURROGATE.search(service_id):  # in a Python str even a "pair" is two lone surrogates: not UTF-8
        raise ValueError(f"service_id must be well-formed Unicode (a lone surrogate cannot be stored): {service_id!r}")
    return service_id


def check_registration(service_id: Any, port: Any, pid: Any, host: Any, public_key: Any) -> int:
    """Checks what a registration publishes (every registry backend asks the same); returns the
    owner pid (default: this process). ValueError names the bad value."""
    check_service_id(service_id)
    if not _is_port(port):
        raise ValueError(f"port must be an integer in 1..65535 (got {port!r})")
    owner = os.getpid() if pid is None else pid
    if not _is_pid(owner):
        raise ValueError(f"pid must be a positive integer (got {owner!r})")
    if host is not None and not is_advertised_host(host):
        raise ValueError(f"host must be a host name or an IP address (got {host!r})")
    if public_key is not None:
        check_z85_key(public_key, "public_key")
    return owner


def to_entry(stored: Any) -> dict[str, Any] | None:
    """The entry's public shape, or None if it has no valid port and pid."""
    if not isinstance(stored, dict):
        return None
    port, pid, started = stored.get("port"), stored.get("pid"), stored.get("started")
    if not _is_port(port) or not _is_pid(pid):
        return None
    entry = {"port": port, "pid": pid, "started": started if isinstance(started, str) else ""}
    if _is_pid_start(stored.get("pidStart")):
        entry["pidStart"] = stored["pidStart"]
    public_key = stored.get("publicKey")
    if isinstance(public_key, str) and len(public_key) == 40:
        entry["publicKey"] = public_key
    # A service bound beyond loopback writes its address as `advertise` (a v4 writer's `host`,
    # if any wrote one, would mean something else: it is ignored like every unknown key).
    if is_advertised_host(stored.get("advertise")):
        entry["host"] = stored["advertise"]
    return entry


def parse_registry(text: str) -> dict[str, dict[str, Any]] | str:
    """The valid entries as stored (extra keys kept), or a string saying what is wrong."""
    if text.strip() == "":
        return "empty file"
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return str(exc)
    if not isinstance(parsed, dict):
        return "the top level is not a JSON object"
    return {key: value for key, value in parsed.items() if to_entry(value) is not None}


def _utc_now_iso() -> str:
    """`started` exactly as JS writes it: `toISOString()`, UTC, milliseconds, `Z`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def write_registry_file(path: str, document: dict[str, Any], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
    """Atomic replace: a uniquely named temp file in the same directory, fsync, rename."""
    data = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    if len(data) > max_file_bytes:
        raise RegistryError(
            f"not writing {path}: the registry would exceed max_file_bytes ({max_file_bytes}), and could not be read back"
        )
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise RegistryError(f"cannot write {path}: {exc}") from exc


class FileRegistry:
    """Register, unregister and discover services in the shared `services.json`."""

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        base = dir or os.environ.get(REGISTRY_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".multifrost")
        self.dir = os.path.abspath(os.fspath(base))
        self.path = os.path.join(self.dir, REGISTRY_FILE_NAME)
        if not lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 (got {lock_timeout})")
        self._lock_timeout = lock_timeout
        if not isinstance(max_file_bytes, int) or isinstance(max_file_bytes, bool) or max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be a positive integer (got {max_file_bytes!r})")
        self.max_file_bytes = max_file_bytes
        #: What reading cost: stats of services.json, parses (read + JSON parse), looks answered from the cache.
        self.counters = {"stats": 0, "parses": 0, "cache_hits": 0}
        self._cache: tuple[tuple[int, int, int, int, int], dict[str, Any] | str] | None = None

    # -- public -------------------------------------------------------------------------------

    def register(
        self, service_id: str, port: int, pid: int | None = None, *, host: str | None = None, public_key: str | None = None
    ) -> dict[str, Any]:
        """Records service_id -> port owned by pid (default: this process); `host` (a service's
        non-loopback address) is stored as `advertise`, as the TS FileRegistry does, and read
        back as the entry's `host`; `public_key` (a CURVE service's, Z85) as `publicKey`.

        Replaces an entry whose owner is dead or is pid itself; raises ServiceAlreadyRunningError
        if another live process owns it.
        """
        owner = check_registration(service_id, port, pid, host, public_key)

        def change(document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            existing = to_entry(document.get(service_id))
            if existing and existing["pid"] != owner and is_owner_alive(existing["pid"], existing.get("pidStart")):
                raise ServiceAlreadyRunningError(service_id, existing["pid"], existing["port"])
            entry: dict[str, Any] = {"port": port, "pid": owner, "started": _utc_now_iso()}
            pid_start = process_start_time(owner)
            if pid_start is not None:
                entry["pidStart"] = pid_start
            if public_key is not None:
                entry["publicKey"] = public_key
            document[service_id] = dict(entry) if host is None else {**entry, "advertise": host}
            return (entry if host is None else {**entry, "host": host}), True

        return self._update(change)

    def unregister(self, service_id: str, pid: int | None = None) -> bool:
        """Removes the entry only if pid (default: this process) owns it; returns whether it did."""
        check_service_id(service_id)
        owner = os.getpid() if pid is None else pid

        def change(document: dict[str, Any]) -> tuple[bool, bool]:
            entry = to_entry(document.get(service_id))
            if entry is None or entry["pid"] != owner:
                return False, False
            del document[service_id]
            return True, True

        return self._update(change)

    def lookup(self, service_id: str) -> dict[str, Any] | None:
        check_service_id(service_id)
        return _live_entry(self._read_unlocked(), service_id)

    def discover(self, service_id: str, timeout: float = 5.0) -> dict[str, Any]:
        check_service_id(service_id)
        deadline = time.monotonic() + timeout
        while True:
            entry = _live_entry(self._read_unlocked(), service_id)
            if entry is not None:
                return entry
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceNotFoundError(service_id, timeout)
            time.sleep(min(DISCOVER_POLL_S, left))

    def list(self) -> dict[str, dict[str, Any]]:
        document = self._read_unlocked()
        return {key: entry for key in document if (entry := _live_entry(document, key)) is not None}

    # -- internals ----------------------------------------------------------------------------

    def _read_unlocked(self) -> dict[str, Any]:
        """A cached parse while the file is unchanged; the result is shared, never modified."""
        dir_info = _stat_or_none(self.dir)
        if dir_info is None:
            return {}
        assert_trusted("directory", self.dir, dir_info)
        info = _stat_or_none(self.path)
        self.counters["stats"] += 1
        if info is None:
            return {}
        self._check_file(self.path, info)
        if self._cache is not None and self._cache[0] == _cache_key(info):
            self.counters["cache_hits"] += 1
            read = self._cache[1]
        else:
            opened = self._read_checked(self.path)
            if opened is None:
                return {}
            read, opened_info = opened
            settled = time.time_ns() - opened_info.st_mtime_ns > RACY_WINDOW_NS
            self._cache = (_cache_key(opened_info), read) if settled else None
        return read if isinstance(read, dict) else {}

    def _read(self, path: str) -> dict[str, Any] | str:
        """Under the locks: no cache, a fresh document the caller may change."""
        opened = self._read_checked(path)
        return {} if opened is None else opened[0]

    def _read_checked(self, path: str) -> tuple[dict[str, Any] | str, os.stat_result] | None:
        """Opens, checks what was opened, reads at most max_file_bytes (+1 to notice growth), parses."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc}") from exc
        try:
            info = os.fstat(fd)
            self._check_file(path, info)
            chunks: list[bytes] = []
            length = 0
            while length <= self.max_file_bytes:
                chunk = os.read(fd, min(max(info.st_size - length, 65536), self.max_file_bytes + 1 - length))
                if not chunk:
                    break
                chunks.append(chunk)
                length += len(chunk)
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc}") from exc
        finally:
            os.close(fd)
        if length > self.max_file_bytes:
            raise RegistryError(f"refusing the registry file {path}: it grew past max_file_bytes ({self.max_file_bytes}) while being read")
        self.counters["parses"] += 1
        return parse_registry(b"".join(chunks).decode("utf-8", errors="replace")), info

    def _check_file(self, path: str, info: os.stat_result) -> None:
        assert_trusted("file", path, info)
        if info.st_size > self.max_file_bytes:
            raise RegistryError(
                f"refusing the registry file {path}: {info.st_size} bytes is more than max_file_bytes "
                f"({self.max_file_bytes}); it was not read. Remove it (or raise max_file_bytes) if it is really yours"
            )

    def _prepare_dir(self) -> str:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            info = os.stat(self.dir)
        except OSError as exc:
            raise RegistryError(f"cannot prepare the registry directory {self.dir}: {exc}") from exc
        assert_trusted("directory", self.dir, info)
        try:
            if info.st_mode & 0o077:
                os.chmod(self.dir, 0o700)
            # JS v4 locks realpath(services.json) + ".lock": name the same directory.
            return os.path.realpath(self.dir)
        except OSError as exc:
            raise RegistryError(f"cannot prepare the registry directory {self.dir}: {exc}") from exc

    def _update(self, change: Callable[[dict[str, Any]], tuple[T, bool]]) -> T:
        canonical = self._prepare_dir()
        registry_file = os.path.join(canonical, REGISTRY_FILE_NAME)
        python_lock = os.path.join(canonical, PYTHON_LOCK_FILE_NAME)
        with process_lock(registry_file):
            js_lock = JsLock(registry_file, self._lock_timeout)
            try:
                acquire_python_lock(python_lock, self._lock_timeout)
                try:
                    read = self._read(registry_file)
                    if isinstance(read, str):
                        # Under both locks nobody is writing: real damage, not a write in progress.
                        _set_aside_corrupt(registry_file, read)
                        read = {}
                    result, changed = change(read)
                    if changed:
                        js_lock.assert_held()
                        write_registry_file(registry_file, read, self.max_file_bytes)
                    return result
                finally:
                    try:
                        os.unlink(python_lock)
                    except OSError:
                        pass
            finally:
                js_lock.release()


def _live_entry(document: dict[str, Any], service_id: str) -> dict[str, Any] | None:
    entry = to_entry(document.get(service_id))
    return entry if entry is not None and is_owner_alive(entry["pid"], entry.get("pidStart")) else None


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"cannot stat {path}: {exc}") from exc


def _cache_key(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _set_aside_corrupt(path: str, problem: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat().replace(":", "-").replace(".", "-")
    aside = f"{path}.corrupt-{stamp}"
    try:
        os.rename(path, aside)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise RegistryError(f"cannot move the corrupt {path} aside: {exc}") from exc
    sys.__stderr__.write(
        f"multifrost registry: {path} was corrupt ({problem}), starting from an empty registry; "
        f"the bad file was kept as {aside}\n"
    )
