"""ChildWorker: expose a class's methods to Multifrost, JS v4 and Python v4 parents.

Threads, one job each:
  - the I/O thread owns the ZeroMQ ROUTER socket (sockets are not thread-safe): it receives,
    validates, answers heartbeats at once, hands calls out and sends every reply and output line;
  - sync handlers run in a bounded ThreadPoolExecutor (`max_concurrency` threads);
  - `async def` handlers run on one asyncio loop thread (at most `max_concurrency` at once);
  - the thread that called `run()` (normally the main thread, which owns the signal handlers)
    waits for a stop request and then performs the orderly shutdown.
Replies travel back to the I/O thread through a bounded thread-safe queue plus a wake pipe the
I/O thread polls alongside the socket.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import _wire as wire
from ._callables import callable_table
from ._output import LineWriter
from .registry import FileRegistry

LIST_NAMES: Final = ("listFunctions", "list_functions")
PARENT_WATCH_S: Final = 0.5
IO_TICK_MS: Final = 100
CHILD_LINGER_MS: Final = 500
MAX_PEERS: Final = 256
#: Replies and output lines waiting for the I/O thread.
OUT_QUEUE_SIZE: Final = 10_000
#: Messages the I/O thread made itself (heartbeat and refusal replies) waiting for a slow peer.
LOCAL_QUEUE_SIZE: Final = 10_000
RECV_BATCH: Final = 256


@dataclass(frozen=True)
class CallContext:
    """What a handler can learn about the call it is running (`self.call` or `current_call()`)."""

    id: str
    function: str
    namespace: str
    client_name: str | None = None
    #: W3C trace context from the call's `metadata.traceparent` / `metadata.tracestate`, if sent.
    traceparent: str | None = None
    tracestate: str | None = None
    #: Seconds since the epoch by which the caller stops waiting (`metadata.deadline`), if sent.
    deadline: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Set when the caller cancels the call (a `cancel` message: its signal aborted or it timed out).
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """True once the caller has cancelled this call; a handler may stop early (its result is dropped)."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleeps until the call is cancelled or `timeout` seconds pass; True when cancelled."""
        return self._cancel.wait(timeout)

    def remaining(self) -> float | None:
        """Seconds left until the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.time()


_current_call: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("multifrost_call", default=None)


def current_call() -> CallContext | None:
    """The call being handled by this thread or task, or None outside a call."""
    return _current_call.get()


def _call_context(message: dict[str, Any]) -> CallContext:
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    traceparent = metadata.get("traceparent")
    tracestate = metadata.get("tracestate")
    deadline = metadata.get("deadline")
    client_name = message.get("client_name")
    return CallContext(
        id=message["id"],
        function=message["function"],
        namespace=message["namespace"],
        client_name=client_name if isinstance(client_name, str) else None,
        traceparent=traceparent if isinstance(traceparent, str) else None,
        tracestate=tracestate if isinstance(tracestate, str) else None,
        deadline=float(deadline) if isinstance(deadline, (int, float)) and not isinstance(deadline, bool) else None,
        metadata=metadata,
    )


@dataclass
class _Settings:
    service_id: str | None = None
    max_concurrency: int = 64
    max_queued_calls: int = 10_000
    shutdown_grace: float = 5.0
    disconnect_grace: float = 2.0
    accept_shutdown: bool | None = None
    forward_output: bool = True
    handle_signals: bool = True
    registry: FileRegistry | None = None
    host: str = "127.0.0.1"
    max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE


class ChildWorker:
    """Subclass it, add methods, call `run()`.

    Spawn mode (the parent set `COMLINK_ZMQ_PORT`): connects to the parent. Connect mode
    (`ChildWorker("service-id")`): binds 127.0.0.1 on a port the OS picks and registers it.
    Only the methods your subclasses define are callable — never `_private` ones nor anything
    ChildWorker defines (`run`, `stop`, `list_functions`, ...). Methods may be `def` (run in a
    thread pool) or `async def` (run on the worker's asyncio loop); heartbeats are answered
    whatever they are doing.
    """

    #: The namespace this worker answers; calls for another one are ignored (spec §9.3).
    namespace: str = wire.DEFAULT_NAMESPACE

    def __init__(
        self,
        service_id: str | None = None,
        *,
        max_concurrency: int = 64,
        max_queued_calls: int = 10_000,
        shutdown_grace: float = 5.0,
        disconnect_grace: float = 2.0,
        accept_shutdown: bool | None = None,
        forward_output: bool = True,
        handle_signals: bool = True,
        registry: FileRegistry | None = None,
        registry_dir: str | None = None,
        host: str = "127.0.0.1",
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        """
        service_id: connect mode's name in the registry (ignored when COMLINK_ZMQ_PORT is set).
        max_concurrency: sync calls running at once (thread pool size), and async calls at once.
        max_queued_calls: calls accepted beyond those running; past it a call gets a BusyError reply.
        shutdown_grace: seconds a stop (SIGTERM, `shutdown`) lets running calls finish.
        disconnect_grace: spawn mode: seconds without the parent's connection before exiting.
        accept_shutdown: obey `shutdown` messages; default True in spawn mode, False for services.
        forward_output: connect mode: send printed lines to connected parents as stdout/stderr messages.
        handle_signals: SIGTERM/SIGINT stop the worker (only when `run()` is on the main thread).
        registry / registry_dir: where connect mode registers (default $MULTIFROST_REGISTRY_DIR or ~/.multifrost).
        host: connect mode's interface to bind.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (got {max_concurrency})")
        if max_queued_calls < 0:
            raise ValueError(f"max_queued_calls must be >= 0 (got {max_queued_calls})")
        self.service_id = service_id
        self._mf_settings = _Settings(
            service_id=service_id,
            max_concurrency=max_concurrency,
            max_queued_calls=max_queued_calls,
            shutdown_grace=shutdown_grace,
            disconnect_grace=disconnect_grace,
            accept_shutdown=accept_shutdown,
            forward_output=forward_output,
            handle_signals=handle_signals,
            registry=registry if registry is not None else (FileRegistry(registry_dir) if registry_dir else None),
            host=host,
            max_message_size=max_message_size,
        )

    # -- public API ---------------------------------------------------------------------------

    def list_functions(self) -> list[str]:
        """The names a parent may call."""
        return list(callable_table(self, ChildWorker))

    @property
    def call(self) -> CallContext | None:
        """The call being handled (id, traceparent, deadline...), or None outside a call."""
        return _current_call.get()

    @property
    def stats(self) -> dict[str, Any]:
        runtime: _Runtime | None = getattr(self, "_mf_runtime", None)
        return runtime.stats_snapshot() if runtime is not None else {}

    def run(self) -> None:
        """Serves calls until a `shutdown` message, SIGTERM/SIGINT, the parent's death
        (spawn mode) or `stop()`, then unregisters (connect mode) and returns.

        Exits the process with code 1 and a FATAL line on stderr when COMLINK_ZMQ_PORT is
        invalid or neither it nor a service id is given. Raises ServiceAlreadyRunningError when
        another live process holds the service id.
        """
        settings = getattr(self, "_mf_settings", None)
        if settings is None:  # a subclass __init__ that did not call super().__init__()
            settings = _Settings(service_id=getattr(self, "service_id", None))
            self._mf_settings = settings
        if getattr(self, "_mf_runtime", None) is not None:
            raise RuntimeError("ChildWorker.run() called twice")
        service_id = getattr(self, "service_id", None) or settings.service_id
        port_text = os.environ.get(wire.ENV_PORT)
        endpoint: str | None = None
        if port_text is not None:
            text = port_text.strip()
            if not text.isdigit() or not wire.MIN_PORT <= int(text) <= wire.MAX_PORT:
                _fatal(
                    f"invalid {wire.ENV_PORT} {port_text!r}: expected an integer port between "
                    f"{wire.MIN_PORT} and {wire.MAX_PORT}"
                )
            endpoint = f"tcp://127.0.0.1:{int(text)}"
            # A Multifrost parent also offers a private ipc:// endpoint (in a directory only its
            # user can enter); v4 parents do not set it.
            private = os.environ.get(wire.ENV_ENDPOINT, "")
            if private.startswith("ipc://"):
                endpoint = private
        elif not service_id:
            _fatal(f"Need {wire.ENV_PORT} env (spawn mode) or a service_id (connect mode)")
        runtime = _Runtime(self, settings, endpoint, None if endpoint else service_id)
        self._mf_runtime = runtime
        try:
            runtime.serve()
        finally:
            self._mf_runtime = None

    def stop(self, wait: bool = True) -> None:
        """Asks a running worker to stop (as SIGTERM does); waits for it unless called from a handler."""
        runtime: _Runtime | None = getattr(self, "_mf_runtime", None)
        if runtime is None:
            return
        runtime.request_stop("api")
        if wait and _current_call.get() is None and threading.current_thread() is not runtime.serving_thread:
            runtime.finished.wait()

    def __enter__(self) -> "ChildWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(wait=False)


def _fatal(message: str) -> None:
    sys.stderr.write(f"FATAL: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


class _Runtime:
    """One run of a worker: sockets, threads, shutdown. Not public."""

    def __init__(self, worker: ChildWorker, settings: _Settings, endpoint: str | None, service_id: str | None) -> None:
        self.worker = worker
        self.settings = settings
        self.endpoint = endpoint
        self.service_id = service_id
        self.spawn_mode = endpoint is not None
        self.accept_shutdown = settings.accept_shutdown if settings.accept_shutdown is not None else self.spawn_mode
        self.handlers = callable_table(worker, ChildWorker)
        self.names = list(self.handlers)
        self.is_async = {name: inspect.iscoroutinefunction(fn) for name, fn in self.handlers.items()}
        self.registry: FileRegistry | None = None
        self.registered = False
        self.serving_thread = threading.current_thread()
        self.finished = threading.Event()

        # Stop requests (from signals, the I/O thread, stop()).
        self._stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.stopping = False  # read by the I/O thread: refuse new calls

        # Out queue (any thread -> I/O thread) and its wake pipe.
        self._out: queue.Queue[tuple[Any, ...]] = queue.Queue(OUT_QUEUE_SIZE)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        # I/O-thread-only state.
        self._local: collections.deque[tuple[list[bytes], bytes, bool]] = collections.deque()
        self._stalled: tuple[list[bytes], bytes, bool] | None = None
        self._peers: collections.OrderedDict[bytes, list[bytes]] = collections.OrderedDict()
        self.has_peers = False
        self.inflight = 0
        self.idle = threading.Event()
        self.idle.set()
        self._io_exit_deadline: float | None = None
        self._disconnected_at: float | None = None
        self._parent_pid = os.getppid()
        self._next_parent_check = 0.0

        self.counters: dict[str, Any] = {
            "calls_received": 0,
            "heartbeats_answered": 0,
            "rejected": {},
            "send_failures": 0,
            "lines_forwarded": 0,
            "lines_dropped": 0,
            "calls_cancelled": 0,
            "calls_cancelled_queued": 0,
        }
        #: Calls handed to a handler thread or task and not finished, by id: what a `cancel` reaches.
        self._live: dict[str, CallContext] = {}

        self.context: zmq.Context[Any] | None = None
        self.sock: zmq.Socket[Any] | None = None
        self.monitor: zmq.Socket[Any] | None = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._io_thread: threading.Thread | None = None
        self._async_slots: asyncio.Semaphore | None = None
        self._saved_streams: tuple[Any, Any] | None = None
        self._writers: list[LineWriter] = []

    # -- lifecycle (serving thread) ------------------------------------------------------------

    def serve(self) -> None:
        previous = self._install_signal_handlers()
        try:
            self._open_socket()
            self.executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.settings.max_concurrency, thread_name_prefix="multifrost-call"
            )
            self._start_loop()
            self._io_thread = threading.Thread(target=self._io_main, name="multifrost-io", daemon=True)
            self._io_thread.start()
            self._setup_output()
            while not self._stop_event.wait(0.5):
                pass
            self._shutdown(self.stop_reason or "api")
        finally:
            self._restore_signal_handlers(previous)
            self.finished.set()
        if self.stop_reason != "api" and self.inflight > 0:
            # Calls still running past the grace period (or the parent is gone): their threads
            # would keep the interpreter alive at exit.
            _flush_std()
            os._exit(0)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop_event.set()

    def _open_socket(self) -> None:
        context: zmq.Context[Any] = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.LINGER, CHILD_LINGER_MS)
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_size)
        self.context, self.sock = context, sock
        try:
            if self.endpoint is not None:
                self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
                sock.connect(self.endpoint)
            else:
                assert self.service_id is not None
                sock.bind(f"tcp://{self.settings.host}:0")
                endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
                port = int(endpoint.rsplit(":", 1)[1])
                self.registry = self.settings.registry or FileRegistry()
                self.registry.register(self.service_id, port)
                self.registered = True
        except BaseException:
            self._close_socket(linger=0)
            raise

    def _close_socket(self, linger: int = CHILD_LINGER_MS) -> None:
        if self.monitor is not None:
            try:
                self.sock.disable_monitor()  # type: ignore[union-attr]
            except zmq.ZMQError:
                pass
            self.monitor.close(linger=0)
            self.monitor = None
        if self.sock is not None:
            self.sock.close(linger=linger)
            self.sock = None
        if self.context is not None:
            self.context.term()
            self.context = None

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            self._async_slots = asyncio.Semaphore(self.settings.max_concurrency)
            ready.set()
            loop.run_forever()
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

        self.loop = loop
        self._loop_thread = threading.Thread(target=main, name="multifrost-async", daemon=True)
        self._loop_thread.start()
        ready.wait()

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
        if reason != "parent-gone":
            self.idle.wait(self.settings.shutdown_grace)
        self._restore_output()
        # Let the I/O thread flush what is queued (bounded), then close.
        self._io_exit_deadline = time.monotonic() + 1.0
        self._wake()
        if self._io_thread is not None:
            self._io_thread.join(3.0)
        if self.registered and self.registry is not None and self.service_id is not None:
            self.registered = False
            try:
                self.registry.unregister(self.service_id)
            except Exception as exc:  # noqa: BLE001
                sys.stderr.write(f"multifrost child: could not unregister {self.service_id!r}: {exc}\n")
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(1.0)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

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

    # -- any thread -> I/O thread --------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: the I/O thread is already being woken; closed: it is gone

    def _post_reply(self, envelope: list[bytes], payload: bytes) -> None:
        """Queues a call's reply (blocks while the queue is full: backpressure on handlers)."""
        while True:
            try:
                self._out.put(("reply", envelope, payload), timeout=1.0)
                break
            except queue.Full:
                if self._io_thread is None or not self._io_thread.is_alive():
                    return
        self._wake()

    def _forward_line(self, stream: str, line: str) -> bool:
        if not self.has_peers or self.sock is None or threading.current_thread() is self._io_thread:
            return False
        try:
            payload = wire.encode(wire.create_output(stream, line), self.settings.max_message_size)
            self._out.put_nowait(("output", payload))
        except (queue.Full, wire.EncodeError):
            self.counters["lines_dropped"] += 1
            return False
        self._wake()
        return True

    # -- handler threads -------------------------------------------------------------------------

    def _skip_cancelled(self, context: CallContext) -> bool:
        """A call cancelled while it waited never runs and gets no reply (its caller stopped waiting)."""
        if not context.cancelled:
            return False
        self._live.pop(context.id, None)
        self._out.put(("done",))
        self._wake()
        return True

    def _run_sync(self, handler: Callable[..., Any], args: list[Any], context: CallContext, envelope: list[bytes]) -> None:
        if self._skip_cancelled(context):
            return
        handed_off = False
        try:
            handed_off = self._run_sync_call(handler, args, context, envelope)
        finally:
            if not handed_off:
                self._live.pop(context.id, None)

    def _run_sync_call(self, handler: Callable[..., Any], args: list[Any], context: CallContext, envelope: list[bytes]) -> bool:
        """Runs a sync handler; True when its result is an awaitable handed to the loop (still live)."""
        token = _current_call.set(context)
        try:
            result = handler(*args)
        except BaseException as exc:  # noqa: BLE001 - a handler's failure is the caller's error reply
            self._reply_error(context.id, exc, envelope)
            return False
        finally:
            _current_call.reset(token)
        if inspect.isawaitable(result) and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._finish_awaitable(result, context, envelope), self.loop)
            return True
        self._post_reply(envelope, wire.encode_reply(wire.create_response(context.id, result), self.settings.max_message_size))
        return False

    async def _finish_awaitable(self, awaitable: Any, context: CallContext, envelope: list[bytes]) -> None:
        _current_call.set(context)
        try:
            result = await awaitable
        except BaseException as exc:  # noqa: BLE001
            self._reply_error(context.id, exc, envelope)
            return
        finally:
            self._live.pop(context.id, None)
        self._post_reply(envelope, wire.encode_reply(wire.create_response(context.id, result), self.settings.max_message_size))

    async def _run_async(self, handler: Callable[..., Any], args: list[Any], context: CallContext, envelope: list[bytes]) -> None:
        assert self._async_slots is not None
        async with self._async_slots:
            if self._skip_cancelled(context):
                return
            _current_call.set(context)  # this task's own context copy
            try:
                result = await handler(*args)
            except BaseException as exc:  # noqa: BLE001 (CancelledError at shutdown included)
                self._reply_error(context.id, exc, envelope)
                return
            finally:
                self._live.pop(context.id, None)
        self._post_reply(envelope, wire.encode_reply(wire.create_response(context.id, result), self.settings.max_message_size))

    def _reply_error(self, msg_id: str, exc: BaseException, envelope: list[bytes]) -> None:
        error, stack = wire.format_exception(exc)
        self._post_reply(envelope, wire.encode_reply(wire.create_error(msg_id, error, stack), self.settings.max_message_size))

    # -- I/O thread ----------------------------------------------------------------------------

    def _io_main(self) -> None:
        sock = self.sock
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)
        want_out = False
        try:
            while True:
                events = dict(poller.poll(IO_TICK_MS))
                if self._wake_r in events:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                if events.get(sock, 0) & zmq.POLLIN:
                    self._receive_batch(sock)
                blocked = self._flush(sock)
                if blocked != want_out:
                    poller.modify(sock, zmq.POLLIN | (zmq.POLLOUT if blocked else 0))
                    want_out = blocked
                if self.monitor is not None and self.monitor in events:
                    self._on_monitor()
                self._watch_parent()
                if self._io_exit_deadline is not None:
                    nothing_left = self._stalled is None and not self._local and self._out.empty()
                    if nothing_left or time.monotonic() >= self._io_exit_deadline:
                        break
        except Exception as exc:  # noqa: BLE001 - never die silently
            sys.__stderr__.write(f"multifrost child: I/O loop failed: {exc!r}\n")
            self.request_stop("io-failure")
        finally:
            self._close_socket()

    def _receive_batch(self, sock: zmq.Socket[Any]) -> None:
        for _ in range(RECV_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_frames(frames)

    def _reject(self, reason: str) -> None:
        rejected = self.counters["rejected"]
        rejected[reason] = rejected.get(reason, 0) + 1

    def _send_local(self, envelope: list[bytes], message: dict[str, Any]) -> None:
        if len(self._local) >= LOCAL_QUEUE_SIZE:
            self.counters["send_failures"] += 1
            return
        try:
            payload = wire.encode(message, self.settings.max_message_size)
        except wire.EncodeError:
            self.counters["send_failures"] += 1
            return
        self._local.append((envelope, payload, False))

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            self._reject("short-envelope")
            return
        envelope = frames[:-1]
        message = wire.parse_frame(frames[-1], self.settings.max_message_size)
        if isinstance(message, wire.Rejected):
            self._reject(message.reason)
            text = wire.INVALID_CALL_TEXT.get(message.reason)
            if message.id is not None and text is not None:
                self._send_local(envelope, wire.create_error(message.id, text))
            return
        msg_type = message["type"]
        if msg_type == "call":
            if message["namespace"] != _namespace_of(self.worker):
                self._reject("namespace-mismatch")
                return
            self._heard(envelope)
            self.counters["calls_received"] += 1
            if self.stopping:
                self._send_local(envelope, wire.create_error(message["id"], "WorkerStoppingError: worker is shutting down"))
                return
            self._dispatch(envelope, message)
        elif msg_type == "heartbeat":
            # Answered here, outside the handlers: a busy worker is not a dead one.
            self._heard(envelope)
            self.counters["heartbeats_answered"] += 1
            self._send_local(envelope, wire.create_heartbeat_reply(message))
        elif msg_type == "cancel":
            context = self._live.get(message["id"])
            if context is not None and not context.cancelled:
                context._cancel.set()
                self.counters["calls_cancelled"] += 1
        elif msg_type == "shutdown":
            if self.accept_shutdown:
                self.request_stop("shutdown-message")
            else:
                self._reject("shutdown-refused")
        # responses, output and other types are not for a child

    def _heard(self, envelope: list[bytes]) -> None:
        identity = envelope[0]
        if identity in self._peers:
            self._peers.move_to_end(identity)
            return
        self._peers[identity] = envelope
        if len(self._peers) > MAX_PEERS:
            self._peers.popitem(last=False)
        self.has_peers = True

    def _forget(self, identity: bytes) -> None:
        self._peers.pop(identity, None)
        self.has_peers = bool(self._peers)

    def _dispatch(self, envelope: list[bytes], message: dict[str, Any]) -> None:
        name: str = message["function"]
        msg_id: str = message["id"]
        if name in LIST_NAMES:
            self._send_local(envelope, wire.create_response(msg_id, self.names))
            return
        handler = self.handlers.get(name)
        if handler is None:
            if name.startswith("_") or name.startswith("#"):
                text = f"PermissionError: Cannot call private method '{name}'"
            else:
                text = f"AttributeError: Function '{name}' not found"
            self._send_local(envelope, wire.create_error(msg_id, text))
            return
        if self.inflight >= self.settings.max_concurrency + self.settings.max_queued_calls:
            self._send_local(envelope, wire.create_error(msg_id, f"BusyError: worker busy ({self.inflight} calls in flight)"))
            return
        context = _call_context(message)
        args = message["args"]
        self._live[msg_id] = context
        self.inflight += 1
        self.idle.clear()
        try:
            if self.is_async[name]:
                assert self.loop is not None
                asyncio.run_coroutine_threadsafe(self._run_async(handler, args, context, envelope), self.loop)
            else:
                assert self.executor is not None
                self.executor.submit(self._run_sync, handler, args, context, envelope)
        except RuntimeError as exc:  # executor or loop already shut down
            self._live.pop(msg_id, None)
            self._call_done()
            self._send_local(envelope, wire.create_error(msg_id, f"WorkerStoppingError: {exc}"))

    def _call_done(self) -> None:
        self.inflight -= 1
        if self.inflight <= 0:
            self.inflight = 0
            self.idle.set()

    def _next_outgoing(self) -> tuple[list[bytes], bytes, bool] | list[tuple[list[bytes], bytes, bool]] | None:
        if self._local:
            return self._local.popleft()
        try:
            item = self._out.get_nowait()
        except queue.Empty:
            return None
        if item[0] == "reply":
            return (item[1], item[2], True)
        if item[0] == "done":  # a cancelled call that never ran: no reply
            self.counters["calls_cancelled_queued"] += 1
            self._call_done()
            return []
        # An output line: one message per known parent.
        payload = item[1]
        self.counters["lines_forwarded"] += 1
        return [(envelope, payload, False) for envelope in list(self._peers.values())]

    def _flush(self, sock: zmq.Socket[Any]) -> bool:
        """Sends what is waiting; True when the socket would block (a peer is slow)."""
        while True:
            if self._stalled is not None:
                item = self._stalled
                self._stalled = None
            else:
                nxt = self._next_outgoing()
                if nxt is None:
                    return False
                if isinstance(nxt, list):
                    for index, part in enumerate(nxt):
                        if not self._send_one(sock, part):
                            # Keep the rest for later, in order.
                            self._local.extendleft(reversed(nxt[index + 1 :]))
                            return True
                    continue
                item = nxt
            if not self._send_one(sock, item):
                return True

    def _send_one(self, sock: zmq.Socket[Any], item: tuple[list[bytes], bytes, bool]) -> bool:
        envelope, payload, is_reply = item
        try:
            sock.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.Again:
            self._stalled = item
            return False
        except zmq.ZMQError:
            # EHOSTUNREACH (ROUTER_MANDATORY): that parent is gone; stop writing to it.
            self.counters["send_failures"] += 1
            self._forget(envelope[0])
        if is_reply:
            self._call_done()
        return True

    def _on_monitor(self) -> None:
        assert self.monitor is not None
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            kind = event.get("event")
            if kind == zmq.EVENT_CONNECTED:
                self._disconnected_at = None
            elif kind == zmq.EVENT_DISCONNECTED:
                if self._disconnected_at is None:
                    self._disconnected_at = time.monotonic()

    def _watch_parent(self) -> None:
        if not self.spawn_mode or self.stop_reason is not None:
            return
        now = time.monotonic()
        if self._disconnected_at is not None and now - self._disconnected_at >= self.settings.disconnect_grace:
            self.request_stop("parent-gone")
            return
        if now >= self._next_parent_check:
            self._next_parent_check = now + PARENT_WATCH_S
            if os.getppid() != self._parent_pid:
                self.request_stop("parent-gone")

    # -- stats -----------------------------------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot = dict(self.counters)
        snapshot["rejected"] = dict(self.counters["rejected"])
        snapshot["in_flight"] = self.inflight
        return snapshot


def _namespace_of(worker: ChildWorker) -> str:
    namespace = getattr(worker, "namespace", wire.DEFAULT_NAMESPACE)
    return namespace if isinstance(namespace, str) else wire.DEFAULT_NAMESPACE


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
