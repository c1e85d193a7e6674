"""Which registry a setting names: a URL parsed exactly as src/registry/open-registry.ts does.

    file:///dir                                              a FileRegistry in dir
    etcd://host:port[,host:port…][/prefix][?ttl=10&timeout=3000]   an EtcdRegistry

`$MULTIFROST_REGISTRY` holds such a URL. Nothing given: the FileRegistry of
`$MULTIFROST_REGISTRY_DIR` or ~/.multifrost. In the URL `timeout` is in milliseconds, as on the
TS side; the Python objects keep seconds (`request_timeout`), as the rest of this library does.
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

REGISTRY_ENV: Final = "MULTIFROST_REGISTRY"


@runtime_checkable
class RegistryBackend(Protocol):
    """What connect mode needs of a registry (FileRegistry, EtcdRegistry, or your own).

    `host` is passed only by a service that publishes an address (`advertise`, a non-loopback
    `host`), `public_key` only by a CURVE service (`curve=`, Z85, published as `publicKey`); a
    registry of your own that never sees them may leave them out.
    """

    def register(
        self, service_id: str, port: int, pid: int | None = None, *, host: str | None = None, public_key: str | None = None
    ) -> dict[str, Any]: ...

    def unregister(self, service_id: str, pid: int | None = None) -> bool: ...

    def lookup(self, service_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class FileRegistryUrl:
    dir: str


@dataclass(frozen=True)
class EtcdRegistryUrl:
    """An etcd URL's settings; None where the URL leaves the EtcdRegistry default."""

    endpoints: tuple[str, ...]
    prefix: str | None = None
    #: `ttl`, seconds (checked by EtcdRegistry: an integer >= 2).
    lease_ttl: float | None = None
    #: `timeout` in the URL is milliseconds; this is seconds.
    request_timeout: float | None = None


def parse_registry_url(url: str) -> FileRegistryUrl | EtcdRegistryUrl:
    """Parses a registry URL; ValueError says what is accepted."""
    if not isinstance(url, str):
        raise ValueError(f"a registry URL must be a string (got {type(url).__name__})")
    if url.startswith("file://"):
        return FileRegistryUrl(_file_url_to_path(url))
    if url.startswith("etcd://"):
        rest = url[len("etcd://") :]
        before_query, has_query, query = rest.partition("?")
        hosts, _, path = before_query.partition("/")
        endpoints = tuple(host for host in hosts.split(",") if host)
        if not endpoints:
            raise ValueError(f"registry URL {json.dumps(url)} names no etcd endpoint (etcd://host:port[,host:port…])")
        prefix: str | None = None
        if path != "":
            prefix = _decode_uri_component(path if path.endswith("/") else f"{path}/", url)
        lease_ttl: float | None = None
        request_timeout: float | None = None
        for name, value in urllib.parse.parse_qsl(query if has_query else "", keep_blank_values=True):
            if name == "ttl":
                lease_ttl = _js_number(value)
            elif name == "timeout":
                request_timeout = _js_number(value) / 1000
            else:
                raise ValueError(f"registry URL {json.dumps(url)}: unknown parameter '{name}' (known: ttl, timeout)")
        return EtcdRegistryUrl(endpoints, prefix, lease_ttl, request_timeout)
    raise ValueError(f"unsupported registry URL {json.dumps(url)}: use file:///dir or etcd://host:port[,host:port…]")


def open_registry(setting: RegistryBackend | str | None = None, dir: str | None = None) -> RegistryBackend:
    """The registry a setting names: an object is used as is; a URL opens one; with neither, `dir`
    is a FileRegistry directory; else `$MULTIFROST_REGISTRY`, else the default FileRegistry."""
    from ._etcd_registry import EtcdRegistry
    from .registry import FileRegistry

    if setting is not None and not isinstance(setting, str):
        return setting
    if setting is None and dir:
        return FileRegistry(dir)
    url = setting if setting is not None else os.environ.get(REGISTRY_ENV, "")
    if url == "":
        return FileRegistry()
    parsed = parse_registry_url(url)
    if isinstance(parsed, FileRegistryUrl):
        return FileRegistry(parsed.dir)
    options: dict[str, Any] = {}
    if parsed.prefix is not None:
        options["prefix"] = parsed.prefix
    if parsed.lease_ttl is not None:
        options["lease_ttl"] = parsed.lease_ttl
    if parsed.request_timeout is not None:
        options["request_timeout"] = parsed.request_timeout
    return EtcdRegistry(parsed.endpoints, **options)


def _file_url_to_path(url: str) -> str:
    """Node's fileURLToPath on POSIX: host empty or localhost, no encoded '/', percent-decoded."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f'invalid registry URL {json.dumps(url)}: File URL host must be "localhost" or empty on linux')
    if re.search(r"%2f", parts.path, re.IGNORECASE):
        raise ValueError(f"invalid registry URL {json.dumps(url)}: File URL path must not include encoded / characters")
    return urllib.parse.unquote(parts.path) or "/"


def _decode_uri_component(text: str, url: str) -> str:
    """decodeURIComponent: strict — a malformed escape or bad UTF-8 is an error, not kept as is."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise ValueError(f"invalid registry URL {json.dumps(url)}: malformed percent-encoding in the prefix")
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid registry URL {json.dumps(url)}: the prefix is not UTF-8 ({exc})") from None


_DECIMAL: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RADIX: Final = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def _js_number(text: str) -> float:
    """JavaScript's Number(text): "" is 0, 0x/0o/0b literals, ±Infinity; anything else NaN."""
    stripped = text.strip()
    if stripped == "":
        return 0.0
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    if _RADIX.fullmatch(stripped):
        return float(int(stripped, 0))
    if stripped in ("Infinity", "+Infinity"):
        return math.inf
    if stripped == "-Infinity":
        return -math.inf
    return math.nan
