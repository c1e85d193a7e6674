"""Capture of what the worker prints, one line at a time (connect mode forwards it to parents)."""

from __future__ import annotations

import io
import threading
from typing import Callable, TextIO

#: Handed each complete line; returns False when nobody took it (it then goes to the real stream).
ForwardLine = Callable[[str, str], bool]

MAX_LINE_LENGTH = 64 * 1024


class LineWriter(io.TextIOBase):
    """A text stream that splits writes into lines and hands each to `forward`.

    Thread-safe; a line `forward` refuses (no parent yet, queue full) is written to the real
    stream instead, so nothing is lost or printed twice. A partial line is kept until its newline
    or `flush_partial()`; one longer than MAX_LINE_LENGTH is cut.
    """

    def __init__(self, stream: str, real: TextIO, forward: ForwardLine) -> None:
        super().__init__()
        self._stream = stream
        self._real = real
        self._forward = forward
        self._partial = ""
        self._lock = threading.RLock()

    # TextIOBase API ---------------------------------------------------------------------------
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8") or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._real, "errors", "strict")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._real.fileno()

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines: list[str] = []
        with self._lock:
            data = self._partial + text
            while True:
                newline = data.find("\n")
                if newline < 0:
                    break
                lines.append(data[:newline].removesuffix("\r"))
                data = data[newline + 1 :]
            while len(data) > MAX_LINE_LENGTH:
                lines.append(data[:MAX_LINE_LENGTH])
                data = data[MAX_LINE_LENGTH:]
            self._partial = data
            for line in lines:
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        try:
            self._real.flush()
        except (OSError, ValueError):
            pass

    def flush_partial(self) -> None:
        with self._lock:
            if self._partial:
                line, self._partial = self._partial.removesuffix("\r"), ""
                self._emit(line)

    def _emit(self, line: str) -> None:
        try:
            taken = self._forward(self._stream, line)
        except Exception:  # noqa: BLE001 - printing must never raise into user code
            taken = False
        if not taken:
            try:
                self._real.write(line + "\n")
                self._real.flush()
            except (OSError, ValueError):
                pass
