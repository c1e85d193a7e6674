"""Streamed calls (docs/wire.md, Streaming): what a generator handler yields, sent as `chunk`s
under the caller's credit (mirrors the TS child's `Dispatcher.#stream`).

A call carrying `stream: {credit}` gets a StreamFlow from the I/O thread as it is dispatched,
before any handler runs, so a `credit` or `cancel` can never miss it. The producer takes one unit
of credit before each step of the generator: never more chunks are sent than the credit granted
so far (the initial credit plus every `credit.n`), and a producer without credit is simply not
resumed. A sync generator's pool thread then blocks on a Condition (the I/O thread keeps
answering heartbeats); an async generator's step awaits an asyncio.Event that the I/O thread
sets through `call_soon_threadsafe`. Cost per chunk: one uncontended lock; a wake-up only when
the producer had run dry.

A `cancel` (the caller's `break`, its idle timeout, its signal) wakes the producer, which closes
the generator (`close()` / `aclose()`, so its `finally` blocks run) and ends the call with the
usual `response` (result None), which the caller drops. A generator that raises ends the call
with an `error` reply; the chunks before it stand. A value that cannot be encoded ends it with
an `EncodeError` reply, as an unsendable return value does, after closing the generator.
"""

from __future__ import annotations

import asyncio
import collections.abc
import threading
from typing import Any, Callable, Literal

from . import _wire as wire

#: Hands one encoded `chunk` to the I/O thread.
SendChunk = Callable[[bytes], None]


class StreamFlow:
    """The credit and cancellation of one streamed call. `grant` and `cancel` may come from any
    thread (the I/O thread, a stopping worker); `take` / `take_async` only from its producer."""

    def __init__(self, credit: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._credit = credit
        self._cancelled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def grant(self, n: int) -> None:
        """A `credit` message: `n` more chunks may be sent."""
        with self._cond:
            self._credit += n
            self._cond.notify()
        self._wake_async()

    def cancel(self) -> None:
        """The caller stopped reading: the producer stops at its next step."""
        with self._cond:
            self._cancelled = True
            self._cond.notify()
        self._wake_async()

    def take(self) -> bool:
        """Blocks this (pool) thread until one chunk may be sent (True) or the call is cancelled (False)."""
        with self._cond:
            while self._credit <= 0 and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                return False
            self._credit -= 1
            return True

    async def take_async(self) -> bool:
        """As `take`, awaiting on the worker's loop instead of blocking it."""
        if self._event is None:
            # Both set before the first check under the lock: a grant that comes after the check
            # finds them and wakes us; one that came before it left credit we see.
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
        while True:
            self._event.clear()
            with self._cond:
                if self._cancelled:
                    return False
                if self._credit > 0:
                    self._credit -= 1
                    return True
            await self._event.wait()

    def _wake_async(self) -> None:
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass  # the loop is closed: the worker is gone


def stream_kind(value: Any) -> Literal["sync", "async"] | None:
    """How a handler's return value streams: an async iterable on the loop, an iterator (a
    generator, `iter(...)`, `map(...)`) in a pool thread; anything else is a single value."""
    if isinstance(value, collections.abc.AsyncIterable):
        return "async"
    if isinstance(value, collections.abc.Iterator):
        return "sync"
    return None


def stream_sync(iterator: collections.abc.Iterator[Any], flow: StreamFlow, call_id: str, send: SendChunk, max_size: int) -> bytes:
    """Steps a sync iterator on this thread, sending each value; returns the encoded final reply."""
    seq = 0
    try:
        while flow.take():
            try:
                value = next(iterator)
            except StopIteration:
                return _end(call_id, max_size)
            if flow.cancelled:
                break  # the value came after the caller stopped reading: dropped
            try:
                payload = wire.encode_chunk(call_id, seq, value, max_size)
            except wire.EncodeError as exc:
                _close(iterator)
                return _encode_failure(call_id, exc, max_size)
            seq += 1
            send(payload)
        _close(iterator)
        return _end(call_id, max_size)
    except BaseException as exc:  # noqa: BLE001 - the producer's failure is the caller's error reply
        return _failure(call_id, exc, max_size)


async def stream_async(iterable: collections.abc.AsyncIterable[Any], flow: StreamFlow, call_id: str, send: SendChunk, max_size: int) -> bytes:
    """As `stream_sync`, for an async iterable, on the worker's loop."""
    seq = 0
    try:
        iterator = iterable.__aiter__()
        while await flow.take_async():
            try:
                value = await iterator.__anext__()
            except StopAsyncIteration:
                return _end(call_id, max_size)
            if flow.cancelled:
                break
            try:
                payload = wire.encode_chunk(call_id, seq, value, max_size)
            except wire.EncodeError as exc:
                await _aclose(iterator)
                return _encode_failure(call_id, exc, max_size)
            seq += 1
            send(payload)
        await _aclose(iterator)
        return _end(call_id, max_size)
    except BaseException as exc:  # noqa: BLE001 (CancelledError at shutdown included)
        return _failure(call_id, exc, max_size)


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


async def _aclose(iterator: Any) -> None:
    aclose = getattr(iterator, "aclose", None)
    if callable(aclose):
        await aclose()


def _end(call_id: str, max_size: int) -> bytes:
    return wire.encode(wire.create_response(call_id, None), max_size)


def _encode_failure(call_id: str, exc: wire.EncodeError, max_size: int) -> bytes:
    return wire.encode(wire.create_error(call_id, f"EncodeError: {exc}"), max_size)


def _failure(call_id: str, exc: BaseException, max_size: int) -> bytes:
    error, stack = wire.format_exception(exc)
    return wire.encode_reply(wire.create_error(call_id, error, stack), max_size)
