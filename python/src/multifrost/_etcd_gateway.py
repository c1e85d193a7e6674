"""etcd's v3 API through its HTTP/JSON gateway, with the standard library only (no gRPC client:
the package depends on pyzmq and msgpack alone).

Every etcd since 3.4 serves `POST /v3/<service>/<method>` with a JSON body (keys and values
base64, int64 as strings in replies): `kv/put`, `kv/range`, `lease/grant`, `lease/keepalive`
(a stream: one request in the body, one `{"result": …}` line back), `lease/revoke`. etcd 3.3 only
had `/v3beta/`; it is not supported.

One request has one deadline (`timeout`, seconds) over all endpoints: they are tried in turn,
starting from the last one that answered, each given an equal share of what is left — so a dead
first endpoint (refused at once) costs nothing and a black-holed one at most its share. A reply
that says etcd cannot serve now (HTTP 503, gRPC Unavailable) moves on too; any other etcd error
is final. Every failure is a RegistryError. A request opens its own connection: keep-alives are
seconds apart, and the registering thread and the keep-alive thread never share a socket.

The deadline holds over the whole exchange — name resolution, connect, TLS handshake, sending and
the whole reply — not per socket operation (http.client's timeout): an endpoint that trickles a
byte at a time cannot hold a request, and so a registration, a keep-alive or a stopping process's
revoke, past it.
"""

from __future__ import annotations

import base64
import http.client
import io
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._registry_errors import RegistryError

if TYPE_CHECKING:
    import ssl

API_PREFIX: Final = "/v3/"
#: gRPC status codes that mean "this member cannot answer now": try the next endpoint.
_UNAVAILABLE: Final = frozenset({14})  # UNAVAILABLE
#: src/registry/etcd-options.ts's endpoint pattern (ASCII digits; fullmatch: no trailing newline).
ENDPOINT: Final = re.compile(r"(https?://)?[A-Za-z0-9._:\[\]-]+:\d{1,5}", re.ASCII)
#: A reply larger than this is not etcd's (a range is capped at 1000 values of 4 KiB, base64).
MAX_REPLY_BYTES: Final = 32 * 1024 * 1024


class EtcdRequestError(RegistryError):
    """etcd answered a request with an error (`code`: the gRPC status code, e.g. 5 not found)."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    secure: bool
    host: str
    port: int

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """`host:port`, `http://host:port` or `https://host:port` (IPv6 in brackets)."""
    if not isinstance(text, str) or ENDPOINT.fullmatch(text) is None:
        raise ValueError(f"an etcd endpoint must be host:port or http://host:port (got {json.dumps(text)})")
    secure = text.startswith("https://")
    address = re.sub(r"^https?://", "", text)
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not 1 <= int(port) <= 65535:
        raise ValueError(f"an etcd endpoint must be host:port or http://host:port (got {json.dumps(text)})")
    return Endpoint(secure, host, int(port))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    return base64.b64decode(text) if isinstance(text, str) else b""


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` that makes a range read every key starting with `prefix` (etcd's rule)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


class EtcdGateway:
    def __init__(self, endpoints: Sequence[str], timeout: float) -> None:
        if isinstance(endpoints, str):
            raise ValueError("endpoints must be a list of host:port strings, not one string")
        self.endpoints = tuple(parse_endpoint(endpoint) for endpoint in endpoints)
        if not self.endpoints:
            raise ValueError("an etcd registry needs at least one endpoint")
        self.timeout = timeout
        self._first = 0  # the endpoint that answered last
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def call(self, method: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """POSTs `body` to `/v3/<method>`; the reply's JSON object. RegistryError on any failure,
        within `timeout` seconds (default: the gateway's) whatever the endpoints do."""
        payload = json.dumps(body).encode("utf-8")
        limit = self.timeout if timeout is None else min(self.timeout, timeout)
        deadline = time.monotonic() + limit
        with self._lock:
            first = self._first
        count = len(self.endpoints)
        failures: list[str] = []
        for attempt in range(count):
            index = (first + attempt) % count
            endpoint = self.endpoints[index]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                status, data = self._post(endpoint, API_PREFIX + method, payload, time.monotonic() + left / (count - attempt))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{endpoint}: {_summary(exc)}")
                continue
            if status == 200:
                try:
                    parsed = _json_object(data, method, endpoint)
                except EtcdRequestError as exc:
                    if exc.code not in _UNAVAILABLE:
                        raise
                    failures.append(f"{endpoint}: {exc}")
                    continue
                with self._lock:
                    self._first = index
                return parsed
            message, code = _error_of(status, data)
            if status == 503 or code in _UNAVAILABLE:
                failures.append(f"{endpoint}: {message}")
                continue
            raise EtcdRequestError(f"etcd {method} failed ({endpoint}): {message}", code)
        tried = "; ".join(failures) if failures else "no time left"
        raise RegistryError(f"etcd {method} failed: no endpoint answered within {limit:g}s ({tried})")

    def _post(self, endpoint: Endpoint, path: str, payload: bytes, deadline: float) -> tuple[int, bytes]:
        """One HTTP/1.1 POST on a connection of its own, all of it before `deadline` (monotonic)."""
        sock = _connect(endpoint.host, endpoint.port, deadline)
        try:
            if endpoint.secure:
                if self._ssl is None:
                    import ssl  # only for https:// endpoints

                    self._ssl = ssl.create_default_context()
                _settimeout(sock, deadline)  # CPython bounds the whole handshake by it
                sock = self._ssl.wrap_socket(sock, server_hostname=endpoint.host)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            ).encode("ascii")
            _settimeout(sock, deadline)  # sendall: one bound for all of it
            sock.sendall(head + payload)
            response = http.client.HTTPResponse(_DeadlineSource(sock, deadline), method="POST")  # type: ignore[arg-type]
            response.begin()
            if response.length is not None and response.length > MAX_REPLY_BYTES:
                raise http.client.HTTPException(f"a reply of {response.length} bytes")
            parts: list[bytes] = []
            size = 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise http.client.HTTPException(f"a reply of more than {MAX_REPLY_BYTES} bytes")
                parts.append(chunk)
            return response.status, b"".join(parts)
        finally:
            sock.close()


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each given only what is left of the request's time."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        _settimeout(self._sock, self._deadline)
        return self._sock.recv_into(buffer)


class _DeadlineSource:
    """What http.client.HTTPResponse reads a reply from (it only calls makefile("rb"))."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._reader = io.BufferedReader(_DeadlineReader(sock, deadline))

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return self._reader


def _settimeout(sock: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)


def _resolve(host: str, port: int, deadline: float) -> list[Any]:
    """getaddrinfo within the deadline: an IP address at once, a name in a helper thread (a
    resolver that hangs is left behind, daemon, rather than holding the request)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: list[Any] = []

    def resolve() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - handed to the request's thread
            outcome.append(exc)

    thread = threading.Thread(target=resolve, name="multifrost-etcd-resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise TimeoutError(f"timed out resolving {host}")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return list(outcome[0])


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    if not 0 < port < 65536:
        raise OSError(f"port {port} is out of range")
    error: OSError | None = None
    for family, kind, proto, _name, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            _settimeout(sock, deadline)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break
    raise error if error is not None else OSError(f"no address for {host}")


def _json_object(data: bytes, method: str, endpoint: Endpoint) -> dict[str, Any]:
    # A stream's reply (lease/keepalive) is one JSON object per line; one request, one line.
    text = data.decode("utf-8", errors="replace").strip().split("\n", 1)[0]
    try:
        parsed = json.loads(text)
    except ValueError:
        raise RegistryError(f"etcd {method} ({endpoint}) answered something that is not JSON: {text[:200]!r}") from None
    if not isinstance(parsed, dict):
        raise RegistryError(f"etcd {method} ({endpoint}) answered {text[:200]!r}, not a JSON object")
    if isinstance(parsed.get("error"), (dict, str)) and "result" not in parsed:
        message, code = _error_of(200, data)
        raise EtcdRequestError(f"etcd {method} failed ({endpoint}): {message}", code)
    return parsed


def _error_of(status: int, data: bytes) -> tuple[str, int | None]:
    """The gateway's `{"error", "message", "code"}` (or a stream's `{"error": {…}}`) as text and code."""
    text = data.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text.split("\n", 1)[0])
    except ValueError:
        return f"HTTP {status}: {text[:200] or 'no body'}", None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        parsed = parsed["error"]
    if not isinstance(parsed, dict):
        return f"HTTP {status}: {text[:200]}", None
    message = parsed.get("message") or parsed.get("error") or text[:200]
    code = parsed.get("code")
    if not isinstance(code, int):
        code = parsed.get("grpc_code")  # a stream's error: {"error": {"grpc_code", "http_code", "message"}}
    return f"{message} (HTTP {status})", code if isinstance(code, int) else None


def _summary(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
