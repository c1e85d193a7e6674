"""The registry's locks (mirrors src/registry/locks.ts): an update holds, in this order, a
per-file lock of this process (threads queue instead of polling), JS v4's lock directory
`services.json.lock` (proper-lockfile's: stale when its mtime is > 10 s old) and Python v4's
`services.lock` (created exclusively with the owner's pid inside; removed when that owner is
gone, or when it has no pid and is > 30 s old).
"""

from __future__ import annotations

import os
import random
import re
import sys
import threading
import time
from typing import Final

from ._liveness import is_process_alive
from ._registry_errors import RegistryError

#: proper-lockfile's staleness threshold, as JS v4 uses it.
JS_LOCK_STALE_S: Final = 10.0
#: A `services.lock` without a readable pid this old is left over from a crash.
UNREADABLE_PYTHON_LOCK_STALE_S: Final = 30.0


# One update at a time per registry file in this process (threads queue instead of polling).
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def process_lock(path: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


def _jitter(seconds: float) -> float:
    return seconds * (0.5 + random.random() * 0.5)


class JsLock:
    """proper-lockfile's lock: the directory `<file>.lock`; stale when its mtime is > 10 s old."""

    def __init__(self, registry_file: str, timeout: float) -> None:
        self.path = registry_file + ".lock"
        self._mtime = 0.0
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                os.mkdir(self.path)
                self._mtime = os.stat(self.path).st_mtime
                return
            except FileExistsError:
                pass
            except OSError as exc:
                raise RegistryError(f"cannot lock {registry_file}: {exc}") from exc
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            if age > JS_LOCK_STALE_S:
                # proper-lockfile removes a stale lock and tries again at once; so do we.
                try:
                    os.rmdir(self.path)
                except OSError:
                    pass
                continue
            if time.monotonic() >= deadline:
                raise RegistryError(f"the registry lock {self.path} was still held after {timeout:g}s")
            time.sleep(_jitter(delay))
            delay = min(delay * 1.5, 0.1)

    def assert_held(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            raise RegistryError(f"lost the registry lock {self.path}: {exc}") from exc
        if mtime != self._mtime:
            raise RegistryError(f"lost the registry lock {self.path}: taken over by another process")

    def release(self) -> None:
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def _read_holder(path: str) -> tuple[int | None, int, float] | None:
    """(pid inside or None, inode, mtime) of Python v4's lock file, or None if it is gone."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            info = os.fstat(handle.fileno())
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"cannot read the registry lock {path}: {exc}") from exc
    match = re.fullmatch(r"\s*(\d+)\s*", text)
    return (int(match.group(1)) if match else None, info.st_ino, info.st_mtime)


def _remove_if_stale(path: str) -> bool:
    """Removes a `services.lock` whose owner is gone; True when the caller should retry at once."""
    holder = _read_holder(path)
    if holder is None:
        return True
    pid, ino, mtime = holder
    if pid is None:
        age = time.time() - mtime
        if age <= UNREADABLE_PYTHON_LOCK_STALE_S:
            return False  # its owner may be writing its pid right now
        why = f"no pid inside, {round(age)} s old"
    elif pid == os.getpid():
        why = "left behind by this process"
    elif not is_process_alive(pid):
        why = f"its owner, pid {pid}, is gone"
    else:
        return False
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    if now.st_ino != ino or now.st_mtime != mtime:
        return True
    try:
        os.unlink(path)
    except OSError:
        pass
    sys.__stderr__.write(f"multifrost registry: removed the stale lock {path} ({why})\n")
    return True


def acquire_python_lock(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RegistryError(f"cannot create the registry lock {path}: {exc}") from exc
        else:
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            return
        if _remove_if_stale(path):
            continue
        if time.monotonic() >= deadline:
            holder = _read_holder(path)
            by = f" by pid {holder[0]}" if holder and holder[0] is not None else ""
            raise RegistryError(
                f"the registry lock {path} was still held after {timeout:g}s{by}; "
                "remove it if no Multifrost process is updating the registry"
            )
        time.sleep(_jitter(0.075))
