"""The call a handler is running: `self.call` / `current_call()` (mirrors src/child/call-context.ts).

A context variable holds it: a sync handler's thread and an async handler's task each see their
own call. A generator's body runs on each `next()`, in the thread or task that steps it, which
sets the same variable for the whole stream, so `self.call` works inside generators too.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Any


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
    #: Set when the caller cancels the call (a `cancel` message: its signal aborted, it timed out,
    #: or it stopped reading a stream).
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


current_call_var: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("multifrost_call", default=None)


def current_call() -> CallContext | None:
    """The call being handled by this thread or task, or None outside a call."""
    return current_call_var.get()


def call_context(message: dict[str, Any]) -> CallContext:
    """The context of a validated `call` message (metadata fields of the wrong type are ignored)."""
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
