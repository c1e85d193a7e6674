"""One run of a worker: its threads, output capture and orderly shutdown. Not public.

Threads, one job each:
  - the I/O thread (_io.py) owns the ZeroMQ ROUTER socket: it receives, validates, answers
    heartbeats at once, hands calls out and sends every reply, chunk and output line;
  - sync handlers (and sync generators) run in a bounded ThreadPoolExecutor (`max_concurrency`
    threads); `async def` handlers and async generators run on one asyncio loop thread (at most
    `max_concurrency` at once) — see _dispatch.py and _streaming.py;
  - the thread that called `run()` (normally the main thread, which owns the signal handlers)
    waits for a stop request and then performs the orderly shutdown.
Replies travel back to the I/O thread through the Outbox (_outbox.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import _wire as wire
from ._dispatch import Dispatcher
from ._io import IOThread
from ._outbox import Outbox
from ._output import LineWriter

if TYPE_CHECKING:
    from .child import ChildWorker, _Settings

#: Seconds the streams still running after the shutdown grace get to close their generators.
STREAM_CLOSE_S = 1.0


class Runtime:
    def __init__(self, worker: ChildWorker, base: type, settings: _Settings, endpoint: str | None, service_id: str | None) -> None:
        self.worker = worker
        self.settings = settings
        self.endpoint = endpoint
        self.service_id = service_id
        self.spawn_mode = endpoint is not None
        self.accept_shutdown = settings.accept_shutdown if settings.accept_shutdown is not None else self.spawn_mode
        namespace = getattr(worker, "namespace", wire.DEFAULT_NAMESPACE)
        self.namespace = namespace if isinstance(namespace, str) else wire.DEFAULT_NAMESPACE
        self.serving_thread = threading.current_thread()
        self.finished = threading.Event()

        # Stop requests (from signals, the I/O thread, stop()).
        self._stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.stopping = False  # read by the I/O thread: refuse new calls

        self.counters: dict[str, Any] = {
            "calls_received": 0,
            "heartbeats_answered": 0,
            "rejected": {},
            "send_failures": 0,
            "lines_forwarded": 0,
            "lines_dropped": 0,
            "calls_cancelled": 0,
            "calls_cancelled_queued": 0,
            "chunks_sent": 0,
            "curve_refused": 0,
        }
        self.outbox = Outbox()
        self.dispatcher = Dispatcher(worker, base, settings, self.outbox)
        self.io = IOThread(self, self.dispatcher, self.outbox, self.counters)
        self._io_thread: threading.Thread | None = None
        self._saved_streams: tuple[Any, Any] | None = None
        self._writers: list[LineWriter] = []

    # -- lifecycle (serving thread) ------------------------------------------------------------

    def serve(self) -> None:
        previous = self._install_signal_handlers()
        try:
            self.io.open(self.endpoint, self.service_id)
            self.dispatcher.start()
            self._io_thread = threading.Thread(target=self.io.main, name="multifrost-io", daemon=True)
            self.outbox.receiver_alive = self._io_thread.is_alive
            self._io_thread.start()
            self._setup_output()
            while not self._stop_event.wait(0.5):
                pass
            self._shutdown(self.stop_reason or "api")
        finally:
            self._restore_signal_handlers(previous)
            self.finished.set()
        if self.stop_reason != "api" and self.dispatcher.inflight > 0:
            # Calls still running past the grace period (or the parent is gone): their threads
            # would keep the interpreter alive at exit.
            _flush_std()
            os._exit(0)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop_event.set()

    def _setup_output(self) -> None:
        if self.spawn_mode or not self.settings.forward_output:
            # Spawn mode: the pipes carry the output; make it arrive line by line, not in blocks.
            for stream in (sys.stdout, sys.stderr):
                reconfigure = getattr(stream, "reconfigure", None)
                if reconfigure is not None:
                    try:
                        reconfigure(line_buffering=True)
                    except (ValueError, OSError):
                        pass
            return
        self._saved_streams = (sys.stdout, sys.stderr)
        out = LineWriter("stdout", sys.stdout, self._forward_line)
        err = LineWriter("stderr", sys.stderr, self._forward_line)
        self._writers = [out, err]
        sys.stdout, sys.stderr = out, err  # type: ignore[assignment]

    def _restore_output(self) -> None:
        for writer in self._writers:
            writer.flush_partial()
        if self._saved_streams is not None:
            sys.stdout, sys.stderr = self._saved_streams
            self._saved_streams = None
        self._writers = []

    def _shutdown(self, reason: str) -> None:
        self.stopping = True
        idle = self.dispatcher.idle
        if reason != "parent-gone":
            idle.wait(self.settings.shutdown_grace)
        # Streams still running (a parent that stopped reading, or that is gone) close their
        # generators, so their `finally` blocks run and no thread waits for credit forever.
        self.dispatcher.cancel_streams()
        if not idle.is_set():
            idle.wait(STREAM_CLOSE_S)
        self._restore_output()
        # Let the I/O thread flush what is queued (bounded), then close.
        self.io.finish(within=1.0)
        if self._io_thread is not None:
            self._io_thread.join(3.0)
        registry = self.io.registry
        if registry is not None and self.service_id is not None:
            self.io.registry = None
            try:
                registry.unregister(self.service_id)
            except Exception as exc:  # noqa: BLE001
                sys.stderr.write(f"multifrost child: could not unregister {self.service_id!r}: {exc}\n")
        self.dispatcher.stop()
        self.outbox.close()

    def _install_signal_handlers(self) -> dict[int, Any] | None:
        if not self.settings.handle_signals or threading.current_thread() is not threading.main_thread():
            return None
        previous: dict[int, Any] = {}

        def on_signal(_signum: int, _frame: object) -> None:
            self.request_stop("signal")

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any] | None) -> None:
        if previous is None:
            return
        for signum, handler in previous.items():
            try:
                signal.signal(signum, handler)
            except (TypeError, ValueError):
                pass

    # -- any thread ----------------------------------------------------------------------------

    def _forward_line(self, stream: str, line: str) -> bool:
        if not self.io.has_peers or self.io.sock is None or threading.current_thread() is self._io_thread:
            return False
        try:
            payload = wire.encode(wire.create_output(stream, line), self.settings.max_message_size)
        except wire.EncodeError:
            self.counters["lines_dropped"] += 1
            return False
        if not self.outbox.try_post_output(payload):
            self.counters["lines_dropped"] += 1
            return False
        return True

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot = dict(self.counters)
        snapshot["rejected"] = dict(self.counters["rejected"])
        snapshot["in_flight"] = self.dispatcher.inflight
        return snapshot


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
