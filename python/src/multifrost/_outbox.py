"""What handler threads and the asyncio loop hand to the I/O thread, which alone owns the socket
(ZeroMQ sockets are not thread-safe): a bounded thread-safe queue plus a wake pipe the I/O thread
polls alongside the socket.

Items, in the order they were posted (so a stream's chunks precede its reply):
  ("reply", envelope, payload)  a call's reply: the call ends when it is sent
  ("chunk", envelope, payload)  one value of a streamed call
  ("done",)                     a call cancelled before it ran ended without a reply
  ("output", payload)           a printed line, for every connected parent
"""

from __future__ import annotations

import os
import queue
from typing import Any, Callable, Final

#: Replies, chunks and output lines waiting for the I/O thread.
OUT_QUEUE_SIZE: Final = 10_000


class Outbox:
    def __init__(self, size: int = OUT_QUEUE_SIZE) -> None:
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(size)
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: False once the I/O thread is gone: a post then stops waiting for room.
        self.receiver_alive: Callable[[], bool] = lambda: True

    # -- any thread ----------------------------------------------------------------------------

    def post_reply(self, envelope: list[bytes], payload: bytes) -> None:
        """Queues a call's reply (blocks while the queue is full: backpressure on handlers)."""
        self._put(("reply", envelope, payload))

    def post_chunk(self, envelope: list[bytes], payload: bytes) -> None:
        self._put(("chunk", envelope, payload))

    def post_done(self) -> None:
        self._put(("done",))

    def try_post_output(self, payload: bytes) -> bool:
        """Queues an output line unless the queue is full (then the caller prints it locally)."""
        try:
            self._queue.put_nowait(("output", payload))
        except queue.Full:
            return False
        self.wake()
        return True

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: the I/O thread is already being woken; closed: it is gone

    def _put(self, item: tuple[Any, ...]) -> None:
        while True:
            try:
                self._queue.put(item, timeout=1.0)
                break
            except queue.Full:
                if not self.receiver_alive():
                    return
        self.wake()

    # -- I/O thread ----------------------------------------------------------------------------

    def drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def get_nowait(self) -> tuple[Any, ...] | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()

    def close(self) -> None:
        for fd in (self.wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
