"""Whether a registry entry's owner still runs (mirrors src/registry/liveness.ts).

`pidStart` is the owner's start time (field 22 of /proc/<pid>/stat, clock ticks since boot): a
pid that now has another start time was reused, and a zombie is dead too.
"""

from __future__ import annotations

import os
from typing import Any


def _is_pid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 0x7FFFFFFF


def is_process_alive(pid: int) -> bool:
    """True if a process with this pid exists (EPERM: it exists, another user's)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _read_proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, or None if unreadable."""
    if not _is_pid(pid):
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("latin-1")
    except OSError:
        return None
    # Field 2 is the command name in parentheses and may itself contain ") " and spaces.
    fields = text[text.rfind(")") + 2 :].split(" ")
    try:
        return fields[0], int(fields[19])  # fields[0] is field 3, so field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None where it cannot be read."""
    stat = _read_proc_stat(pid)
    return None if stat is None else stat[1]


def is_owner_alive(pid: int, pid_start: int | None = None) -> bool:
    """True if the entry's owner still runs: same start time as recorded, not a zombie.

    Without pid_start (v4 writers), or where /proc cannot tell, this is is_process_alive(pid).
    """
    stat = _read_proc_stat(pid)
    if stat is None:
        return is_process_alive(pid)
    state, start = stat
    if state in ("Z", "X"):
        return False
    return pid_start is None or start == pid_start
