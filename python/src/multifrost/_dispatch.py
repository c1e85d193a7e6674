"""Runs calls (mirrors src/actors/dispatcher.ts): looks the function up, runs a `def` handler in
the bounded thread pool and an `async def` (or async generator) one on the worker's asyncio
loop, and posts its reply, or its stream (_streaming.py), to the Outbox.

Threads: `dispatch`, `cancel`, `credit` and `call_ended` run on the I/O thread, which alone
counts the calls in flight (a call ends when its reply is sent). Handlers run in the pool and on
the loop; `start` / `stop` / `cancel_streams` on the serving thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Final

from . import _wire as wire
from ._callables import callable_table
from ._context import CallContext, call_context, current_call_var
from ._outbox import Outbox
from ._streaming import StreamFlow, stream_async, stream_kind, stream_sync

if TYPE_CHECKING:
    from .child import _Settings

LIST_NAMES: Final = ("listFunctions", "list_functions")


class Dispatcher:
    def __init__(self, worker: object, base: type, settings: _Settings, outbox: Outbox) -> None:
        self.settings = settings
        self.outbox = outbox
        self.handlers = callable_table(worker, base)
        self.names = list(self.handlers)
        self.on_loop = {
            name: inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) for name, fn in self.handlers.items()
        }
        self.inflight = 0
        self.idle = threading.Event()
        self.idle.set()
        #: Calls handed to a handler thread or task and not finished, by id: what a `cancel` reaches.
        self._live: dict[str, CallContext] = {}
        #: The credit and cancellation of streamed calls, by id (made before their handler runs).
        self._flows: dict[str, StreamFlow] = {}
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._async_slots: asyncio.Semaphore | None = None

    # -- serving thread ------------------------------------------------------------------------

    def start(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.max_concurrency, thread_name_prefix="multifrost-call"
        )
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

    def cancel_streams(self) -> None:
        """Stopping: every stream still running is cancelled as a `cancel` would (its generator
        closes, `self.call.cancelled` is set): one waiting for credit that will not come would
        otherwise hold its thread forever."""
        for msg_id, flow in list(self._flows.items()):
            context = self._live.get(msg_id)
            if context is not None:
                context._cancel.set()
            flow.cancel()

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(1.0)

    # -- I/O thread ----------------------------------------------------------------------------

    def dispatch(self, envelope: list[bytes], message: dict[str, Any]) -> dict[str, Any] | None:
        """Starts a validated call; returns the reply the I/O thread sends at once, if any."""
        name: str = message["function"]
        msg_id: str = message["id"]
        if name in LIST_NAMES:
            return wire.create_response(msg_id, self.names)
        handler = self.handlers.get(name)
        if handler is None:
            if name.startswith("_") or name.startswith("#"):
                return wire.create_error(msg_id, f"PermissionError: Cannot call private method '{name}'")
            return wire.create_error(msg_id, f"AttributeError: Function '{name}' not found")
        if self.inflight >= self.settings.max_concurrency + self.settings.max_queued_calls:
            return wire.create_error(msg_id, f"BusyError: worker busy ({self.inflight} calls in flight)")
        context = call_context(message)
        args = message["args"]
        flow: StreamFlow | None = None
        if "stream" in message:
            flow = StreamFlow(message["stream"]["credit"])
            self._flows[msg_id] = flow
        self._live[msg_id] = context
        self.inflight += 1
        self.idle.clear()
        try:
            if self.on_loop[name]:
                assert self.loop is not None
                asyncio.run_coroutine_threadsafe(self._run_async(handler, args, context, envelope, flow), self.loop)
            else:
                assert self.executor is not None
                self.executor.submit(self._run_sync, handler, args, context, envelope, flow)
        except RuntimeError as exc:  # executor or loop already shut down
            self._end(msg_id)
            self.call_ended()
            return wire.create_error(msg_id, f"WorkerStoppingError: {exc}")
        return None

    def cancel(self, msg_id: str) -> bool:
        """A `cancel`: sets the running call's `cancelled` and stops its stream. False for no such call."""
        context = self._live.get(msg_id)
        if context is None or context.cancelled:
            return False
        context._cancel.set()
        flow = self._flows.get(msg_id)
        if flow is not None:
            flow.cancel()
        return True

    def credit(self, msg_id: str, n: int) -> bool:
        """A `credit`: the stream of call `msg_id` may send `n` more chunks. False for no such stream."""
        flow = self._flows.get(msg_id)
        if flow is None:
            return False
        flow.grant(n)
        return True

    def call_ended(self) -> None:
        """A call's reply went out (or a cancelled call ended without one)."""
        self.inflight -= 1
        if self.inflight <= 0:
            self.inflight = 0
            self.idle.set()

    # -- handler threads and the loop ----------------------------------------------------------

    def _end(self, msg_id: str) -> None:
        self._live.pop(msg_id, None)
        self._flows.pop(msg_id, None)

    def _skip_cancelled(self, context: CallContext) -> bool:
        """A call cancelled while it waited never runs and gets no reply (its caller stopped waiting)."""
        if not context.cancelled:
            return False
        self._end(context.id)
        self.outbox.post_done()
        return True

    def _run_sync(self, handler: Callable[..., Any], args: list[Any], context: CallContext, envelope: list[bytes], flow: StreamFlow | None) -> None:
        if self._skip_cancelled(context):
            return
        token = current_call_var.set(context)
        handed_off = False
        try:
            try:
                result = handler(*args)
            except BaseException as exc:  # noqa: BLE001 - a handler's failure is the caller's error reply
                self._post(envelope, _error(context.id, exc, self.settings.max_message_size))
                return
            kind = stream_kind(result) if flow is not None else None
            if (inspect.isawaitable(result) or kind == "async") and self.loop is not None:
                # A coroutine (or async iterable) from a plain function: the loop finishes it.
                asyncio.run_coroutine_threadsafe(self._finish_on_loop(result, context, envelope, flow), self.loop)
                handed_off = True
            elif kind == "sync":
                assert flow is not None
                self._post(envelope, self._stream_sync(result, flow, context.id, envelope))
            else:
                self._post(envelope, self._response(context.id, result))
        finally:
            current_call_var.reset(token)
            if not handed_off:
                self._end(context.id)

    async def _run_async(self, handler: Callable[..., Any], args: list[Any], context: CallContext, envelope: list[bytes], flow: StreamFlow | None) -> None:
        assert self._async_slots is not None
        async with self._async_slots:
            if self._skip_cancelled(context):
                return
            current_call_var.set(context)  # this task's own context copy
            try:
                result = handler(*args)
                if inspect.isawaitable(result):  # an async generator function's result is not
                    result = await result
                payload = await self._outcome(result, context, envelope, flow)
            except BaseException as exc:  # noqa: BLE001 (CancelledError at shutdown included)
                payload = _error(context.id, exc, self.settings.max_message_size)
            finally:
                self._end(context.id)
        self._post(envelope, payload)

    async def _finish_on_loop(self, result: Any, context: CallContext, envelope: list[bytes], flow: StreamFlow | None) -> None:
        current_call_var.set(context)
        try:
            if inspect.isawaitable(result):
                result = await result
            payload = await self._outcome(result, context, envelope, flow)
        except BaseException as exc:  # noqa: BLE001
            payload = _error(context.id, exc, self.settings.max_message_size)
        finally:
            self._end(context.id)
        self._post(envelope, payload)

    async def _outcome(self, result: Any, context: CallContext, envelope: list[bytes], flow: StreamFlow | None) -> bytes:
        """The reply to a result computed on the loop: streamed when asked and it is a stream."""
        kind = stream_kind(result) if flow is not None else None
        if kind == "async":
            assert flow is not None
            send = self._chunk_sender(envelope)
            return await stream_async(result, flow, context.id, send, self.settings.max_message_size)
        if kind == "sync":  # an iterator from an async def: stepped in the pool, not on the loop
            assert flow is not None and self.loop is not None
            step = contextvars.copy_context().run
            return await self.loop.run_in_executor(self.executor, step, self._stream_sync, result, flow, context.id, envelope)
        return self._response(context.id, result)

    def _stream_sync(self, iterator: Any, flow: StreamFlow, call_id: str, envelope: list[bytes]) -> bytes:
        return stream_sync(iterator, flow, call_id, self._chunk_sender(envelope), self.settings.max_message_size)

    def _chunk_sender(self, envelope: list[bytes]) -> Callable[[bytes], None]:
        outbox = self.outbox
        return lambda payload: outbox.post_chunk(envelope, payload)

    def _response(self, msg_id: str, result: Any) -> bytes:
        return wire.encode_reply(wire.create_response(msg_id, result), self.settings.max_message_size)

    def _post(self, envelope: list[bytes], payload: bytes) -> None:
        self.outbox.post_reply(envelope, payload)


def _error(msg_id: str, exc: BaseException, max_size: int) -> bytes:
    error, stack = wire.format_exception(exc)
    return wire.encode_reply(wire.create_error(msg_id, error, stack), max_size)
