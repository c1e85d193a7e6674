"""The I/O thread: it alone owns the ZeroMQ ROUTER socket (sockets are not thread-safe). It
receives and validates frames, answers heartbeats at once (a busy worker is not a dead one:
handlers never run here), hands calls, `cancel`s and `credit`s to the Dispatcher, and sends
every reply, chunk and output line the Outbox brings it, never blocking on a slow peer (a send
that would block waits for POLLOUT). It also watches the parent in spawn mode, and answers
a CURVE service's ZAP requests (_zap.py) on the same poll.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import _wire as wire
from ._advertise import advertised_address
from ._dispatch import Dispatcher
from ._outbox import Outbox
from ._registry_url import RegistryBackend, open_registry
from ._zap import ZapHandler

if TYPE_CHECKING:
    from ._runtime import Runtime

PARENT_WATCH_S: Final = 0.5
IO_TICK_MS: Final = 100
CHILD_LINGER_MS: Final = 500
MAX_PEERS: Final = 256
#: Messages the I/O thread made itself (heartbeat and refusal replies) waiting for a slow peer.
LOCAL_QUEUE_SIZE: Final = 10_000
RECV_BATCH: Final = 256

#: One message to send: (envelope, payload, ends a call).
Outgoing = tuple[list[bytes], bytes, bool]


class IOThread:
    def __init__(self, runtime: Runtime, dispatcher: Dispatcher, outbox: Outbox, counters: dict[str, Any]) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.dispatcher = dispatcher
        self.outbox = outbox
        self.counters = counters
        self.context: zmq.Context[Any] | None = None
        self.sock: zmq.Socket[Any] | None = None
        self.monitor: zmq.Socket[Any] | None = None
        self.zap: ZapHandler | None = None
        self.registry: RegistryBackend | None = None
        # Owned by the I/O thread once it runs.
        self._local: collections.deque[Outgoing] = collections.deque()
        self._stalled: Outgoing | None = None
        self._peers: collections.OrderedDict[bytes, list[bytes]] = collections.OrderedDict()
        self.has_peers = False
        self._exit_deadline: float | None = None
        self._disconnected_at: float | None = None
        self._parent_pid = os.getppid()
        self._next_parent_check = 0.0

    # -- serving thread ------------------------------------------------------------------------

    def open(self, endpoint: str | None, service_id: str | None) -> None:
        """Spawn mode: connects to the parent's endpoint. Connect mode: binds a port the OS picks
        (a CURVE server with `curve`, its ZAP handler bound first) and registers it under
        `service_id` (`self.registry` is then set)."""
        context: zmq.Context[Any] = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.LINGER, CHILD_LINGER_MS)
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_size)
        self.context, self.sock = context, sock
        try:
            if endpoint is not None:
                self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
                sock.connect(endpoint)
            else:
                assert service_id is not None
                curve = self.settings.curve
                if curve is not None:
                    self.zap = ZapHandler(context, curve, self.counters)
                    ZapHandler.secure(sock, curve)
                sock.bind(f"tcp://{self.settings.host}:0")
                bound = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
                port = int(bound.rsplit(":", 1)[1])
                registry = open_registry(self.settings.registry)
                published = advertised_address(self.settings.host, self.settings.advertise)
                extras: dict[str, str] = {}  # only what there is: a registry of your own may not take them
                if published is not None:  # else a loopback service: parents use their own loopback
                    extras["host"] = published
                if curve is not None:
                    extras["public_key"] = curve.public_key
                registry.register(service_id, port, **extras)
                self.registry = registry
        except BaseException:
            self.close(linger=0)
            raise

    def finish(self, within: float) -> None:
        """Stopping: send what is queued (for at most `within` seconds), then close the socket."""
        self._exit_deadline = time.monotonic() + within
        self.outbox.wake()

    def close(self, linger: int = CHILD_LINGER_MS) -> None:
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
        if self.zap is not None:
            self.zap.close()
            self.zap = None
        if self.context is not None:
            self.context.term()
            self.context = None

    # -- the thread ----------------------------------------------------------------------------

    def main(self) -> None:
        sock = self.sock
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.outbox.wake_r, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)
        if self.zap is not None:
            poller.register(self.zap.sock, zmq.POLLIN)
        want_out = False
        try:
            while True:
                events = dict(poller.poll(IO_TICK_MS))
                if self.outbox.wake_r in events:
                    self.outbox.drain_wake()
                if self.zap is not None and self.zap.sock in events:
                    self.zap.answer_pending()
                if events.get(sock, 0) & zmq.POLLIN:
                    self._receive_batch(sock)
                blocked = self._flush(sock)
                if blocked != want_out:
                    poller.modify(sock, zmq.POLLIN | (zmq.POLLOUT if blocked else 0))
                    want_out = blocked
                if self.monitor is not None and self.monitor in events:
                    self._on_monitor()
                self._watch_parent()
                if self._exit_deadline is not None:
                    nothing_left = self._stalled is None and not self._local and self.outbox.empty()
                    if nothing_left or time.monotonic() >= self._exit_deadline:
                        break
        except Exception as exc:  # noqa: BLE001 - never die silently
            sys.__stderr__.write(f"multifrost child: I/O loop failed: {exc!r}\n")
            self.runtime.request_stop("io-failure")
        finally:
            self.close()

    # -- receiving -----------------------------------------------------------------------------

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
            if message["namespace"] != self.runtime.namespace:
                self._reject("namespace-mismatch")
                return
            self._heard(envelope)
            self.counters["calls_received"] += 1
            if self.runtime.stopping:
                self._send_local(envelope, wire.create_error(message["id"], "WorkerStoppingError: worker is shutting down"))
                return
            immediate = self.dispatcher.dispatch(envelope, message)
            if immediate is not None:
                self._send_local(envelope, immediate)
        elif msg_type == "heartbeat":
            # Answered here, outside the handlers: a busy worker is not a dead one.
            self._heard(envelope)
            self.counters["heartbeats_answered"] += 1
            self._send_local(envelope, wire.create_heartbeat_reply(message))
        elif msg_type == "cancel":
            if self.dispatcher.cancel(message["id"]):
                self.counters["calls_cancelled"] += 1
        elif msg_type == "credit":
            self.dispatcher.credit(message["id"], message["n"])
        elif msg_type == "shutdown":
            if self.runtime.accept_shutdown:
                self.runtime.request_stop("shutdown-message")
            else:
                self._reject("shutdown-refused")
        # responses, chunks, output and other types are not for a child

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

    # -- sending -------------------------------------------------------------------------------

    def _next_outgoing(self) -> Outgoing | list[Outgoing] | None:
        if self._local:
            return self._local.popleft()
        item = self.outbox.get_nowait()
        if item is None:
            return None
        kind = item[0]
        if kind == "reply":
            return (item[1], item[2], True)
        if kind == "chunk":
            self.counters["chunks_sent"] += 1
            return (item[1], item[2], False)
        if kind == "done":  # a cancelled call that never ran: no reply
            self.counters["calls_cancelled_queued"] += 1
            self.dispatcher.call_ended()
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

    def _send_one(self, sock: zmq.Socket[Any], item: Outgoing) -> bool:
        envelope, payload, ends_call = item
        try:
            sock.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.Again:
            self._stalled = item
            return False
        except zmq.ZMQError:
            # EHOSTUNREACH (ROUTER_MANDATORY): that parent is gone; stop writing to it.
            self.counters["send_failures"] += 1
            self._forget(envelope[0])
        if ends_call:
            self.dispatcher.call_ended()
        return True

    # -- the parent (spawn mode) ---------------------------------------------------------------

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
        if not self.runtime.spawn_mode or self.runtime.stop_reason is not None:
            return
        now = time.monotonic()
        if self._disconnected_at is not None and now - self._disconnected_at >= self.settings.disconnect_grace:
            self.runtime.request_stop("parent-gone")
            return
        if now >= self._next_parent_check:
            self._next_parent_check = now + PARENT_WATCH_S
            if os.getppid() != self._parent_pid:
                self.runtime.request_stop("parent-gone")
