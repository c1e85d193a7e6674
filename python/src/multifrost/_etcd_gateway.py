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
"""

from __future__ import annotations

import base64
import http.client
import json
import re
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
_ENDPOINT: Final = re.compile(r"^(https?://)?[A-Za-z0-9._:\[\]-]+:\d{1,5}$")


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
    if not isinstance(text, str) or not _ENDPOINT.match(text):
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

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs `body` to `/v3/<method>`; the reply's JSON object. RegistryError on any failure."""
        payload = json.dumps(body).encode("utf-8")
        deadline = time.monotonic() + self.timeout
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
                status, data = self._post(endpoint, API_PREFIX + method, payload, left / (count - attempt))
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{endpoint}: {_summary(exc)}")
                continue
            if status == 200:
                with self._lock:
                    self._first = index
                return _json_object(data, method, endpoint)
            message, code = _error_of(status, data)
            if status == 503 or code in _UNAVAILABLE:
                failures.append(f"{endpoint}: {message}")
                continue
            raise EtcdRequestError(f"etcd {method} failed ({endpoint}): {message}", code)
        tried = "; ".join(failures) if failures else "no time left"
        raise RegistryError(f"etcd {method} failed: no endpoint answered within {self.timeout:g}s ({tried})")

    def _post(self, endpoint: Endpoint, path: str, payload: bytes, timeout: float) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection
        if endpoint.secure:
            if self._ssl is None:
                import ssl  # only for https:// endpoints

                self._ssl = ssl.create_default_context()
            connection = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=self._ssl)
        else:
            connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
        try:
            connection.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


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
    return f"{message} (HTTP {status})", code if isinstance(code, int) else None


def _summary(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
