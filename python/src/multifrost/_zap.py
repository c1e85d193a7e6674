"""The ZAP handler of a CURVE service (ZeroMQ Authentication Protocol, RFC 27), answered on the
I/O thread like everything else the worker's sockets do.

libzmq asks `inproc://zeromq.zap.01` in the socket's context about every connection to a CURVE
server: one request per handshake, after the client proved it holds the secret key of the public
key it shows. Each Runtime has a zmq.Context of its own, so this endpoint is this service's alone
(several services in one process do not share it). The ROUTER sets ZAP_ENFORCE_DOMAIN: with no
handler bound, libzmq refuses every client instead of admitting it. A refused client's handshake
fails (status 400, which libzmq sends it as an ERROR command: a TS parent fails its start at
once); it never reaches the ROUTER, so it gets no reply to anything.

Why not pyzmq's ThreadAuthenticator: it is a second thread with a socket of its own and a policy
of its own (certificate files, not `authorized_keys`), where one poll on the I/O thread does.
"""

from __future__ import annotations

from typing import Any, Final

import zmq

from ._curve import ServiceCurve

ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"
#: The ZAP domain the service's ROUTER names (one handler per context, so one domain suffices).
ZAP_DOMAIN: Final = b"multifrost"
#: Requests answered per poll wake-up before the loop goes back to calls.
ZAP_BATCH: Final = 64


class ZapHandler:
    """Owns the ZAP socket: created and bound on the serving thread before the service binds,
    then read and written only by the I/O thread."""

    def __init__(self, context: zmq.Context[Any], curve: ServiceCurve, counters: dict[str, Any]) -> None:
        self.curve = curve
        self.counters = counters
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except BaseException:
            sock.close(linger=0)
            raise
        self.sock: zmq.Socket[Any] | None = sock

    @staticmethod
    def secure(server: zmq.Socket[Any], curve: ServiceCurve) -> None:
        """Makes `server` a CURVE server that asks this handler about each client (before bind)."""
        server.setsockopt(zmq.CURVE_SERVER, 1)
        server.setsockopt(zmq.CURVE_SECRETKEY, curve.secret_key.encode("ascii"))
        server.setsockopt(zmq.CURVE_PUBLICKEY, curve.public_key.encode("ascii"))
        server.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        server.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def answer_pending(self) -> None:
        """I/O thread: answers the requests waiting (a handshake waits for its answer)."""
        sock = self.sock
        if sock is None:
            return
        for _ in range(ZAP_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._answer(sock, frames)

    def _answer(self, sock: zmq.Socket[Any], frames: list[bytes]) -> None:
        try:
            split = frames.index(b"")
        except ValueError:
            return  # not a ZAP request: no envelope to answer to
        envelope, request = frames[: split + 1], frames[split + 1 :]
        if len(request) < 6:
            return
        version, request_id, domain, _address, _identity, mechanism, *credentials = request
        if version != b"1.0":
            refusal: str | None = "unsupported ZAP version"
        elif domain != ZAP_DOMAIN:
            refusal = "unknown domain"
        else:
            refusal = self.curve.admits(mechanism, credentials)
        if refusal is None:
            status = [b"200", b"OK"]
        else:
            self.counters["curve_refused"] += 1
            status = [b"400", refusal[:200].encode("utf-8", errors="replace")]
        try:
            sock.send_multipart([*envelope, b"1.0", request_id, *status, b"", b""], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # that handshake's session is gone: nothing waits for the answer

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
