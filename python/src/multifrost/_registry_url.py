"""Which registry a setting names: a URL parsed exactly as src/registry/open-registry.ts does.

    file:///dir                                              a FileRegistry in dir
    etcd://host:port[,host:port…][/prefix][?ttl=10&timeout=3000]   an EtcdRegistry

`$MULTIFROST_REGISTRY` holds such a URL. Nothing given: the FileRegistry of
`$MULTIFROST_REGISTRY_DIR` or ~/.multifrost. In the URL `timeout` is in milliseconds, as on the
TS side; the Python objects keep seconds (`request_timeout`), as the rest of this library does.
An etcd URL's settings are checked as the TS parser checks them (src/registry/etcd-options.ts
checkEtcdOptions): a bad ttl, timeout, prefix or endpoint is a ValueError now, not at the first
request.
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
    #: `ttl`, seconds (an integer from 2 to 86400).
    lease_ttl: int | None = None
    #: `timeout` in the URL is milliseconds; this is seconds.
    request_timeout: float | None = None


#: src/registry/etcd-options.ts's limits.
MIN_LEASE_TTL: Final = 2
MAX_LEASE_TTL: Final = 86_400
_PREFIX_CONTROL: Final = re.compile("[\u0000-\u001f]")
_ENDPOINT: Final = re.compile(r"(https?://)?[A-Za-z0-9._:\[\]-]+:\d{1,5}", re.ASCII)


def check_etcd_options(endpoints: Any, prefix: Any, lease_ttl: Any, request_timeout: Any, *, in_url: bool = False) -> None:
    """checkEtcdOptions: ValueError for a bad endpoint, prefix, lease_ttl (an integer from 2 to
    86400 seconds) or request_timeout (a positive, finite number of seconds)."""
    if isinstance(endpoints, str):
        raise ValueError("endpoints must be a list of host:port strings, not one string")
    endpoints = list(endpoints)
    if not endpoints:
        raise ValueError("an etcd registry needs at least one endpoint")
    for endpoint in endpoints:
        if not isinstance(endpoint, str) or _ENDPOINT.fullmatch(endpoint) is None:
            raise ValueError(f"an etcd endpoint must be host:port or http(s)://host:port (got {_js_string(endpoint)})")
    if not isinstance(prefix, str) or _PREFIX_CONTROL.search(prefix):
        raise ValueError(f"prefix must be a string without control characters (got {_js_string(prefix)})")
    if (
        not _is_number(lease_ttl)
        or not math.isfinite(lease_ttl)
        or int(lease_ttl) != lease_ttl
        or not MIN_LEASE_TTL <= lease_ttl <= MAX_LEASE_TTL
    ):
        name = "ttl" if in_url else "lease_ttl"
        raise ValueError(f"{name} must be an integer from {MIN_LEASE_TTL} to {MAX_LEASE_TTL} (got {_js_value(lease_ttl)})")
    if not _is_number(request_timeout) or not 0 < request_timeout < math.inf:
        what = "timeout must be a positive number of milliseconds" if in_url else "request_timeout must be a positive number of seconds"
        raise ValueError(f"{what} (got {_js_value(request_timeout)})")


def parse_registry_url(url: str) -> FileRegistryUrl | EtcdRegistryUrl:
    """Parses a registry URL as src/registry/open-registry.ts parseRegistryUrl does (the same
    URLs are accepted, the same refused); ValueError says what is accepted."""
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
            try:
                prefix = decode_uri_component(path if path.endswith("/") else f"{path}/")
            except ValueError:
                raise ValueError(f"registry URL {json.dumps(url)}: the prefix is not valid percent-encoding") from None
        ttl: float | None = None
        timeout_ms: float | None = None
        for name, value in urllib.parse.parse_qsl(query if has_query else "", keep_blank_values=True):
            if name == "ttl":
                ttl = _js_number(value)
            elif name == "timeout":
                timeout_ms = _js_number(value)
            else:
                raise ValueError(f"registry URL {json.dumps(url)}: unknown parameter '{name}' (known: ttl, timeout)")
        # Checked now, as the TS parser does (the timeout in ms, as the URL gives it).
        try:
            check_etcd_options(
                endpoints, "multifrost/" if prefix is None else prefix, 10 if ttl is None else ttl, 1 if timeout_ms is None else timeout_ms, in_url=True
            )
        except ValueError as exc:
            raise ValueError(f"registry URL {json.dumps(url)}: {exc}") from None
        return EtcdRegistryUrl(
            endpoints, prefix, None if ttl is None else int(ttl), None if timeout_ms is None else timeout_ms / 1000
        )
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


#: What the WHATWG URL parser strips around a URL, and removes inside it.
_C0_OR_SPACE: Final = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE: Final = re.compile("[\t\n\r]")
_DOT: Final = re.compile(r"\.|%2e", re.IGNORECASE)
_DOUBLE_DOT: Final = re.compile(r"(\.|%2e)(\.|%2e)", re.IGNORECASE)


def _file_url_to_path(url: str) -> str:
    """Node's fileURLToPath(url) on POSIX: the WHATWG parse of a file URL (controls stripped, tabs
    and newlines removed, host lower-cased, `localhost` or empty, `.`/`..` resolved, query and
    fragment dropped), no encoded '/', then a strict decodeURIComponent of the path."""
    text = _TAB_OR_NEWLINE.sub("", url.strip(_C0_OR_SPACE))
    rest = text[len("file://") :]
    end = len(rest)
    for stop in "/\\?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    host, rest = rest[:end].lower(), rest[end:]
    if host not in ("", "localhost"):
        raise ValueError(f'invalid registry URL {json.dumps(url)}: File URL host must be "localhost" or empty on linux')
    path = re.split(r"[?#]", rest, maxsplit=1)[0].replace("\\", "/")
    segments: list[str] = []
    parts = path.split("/")[1:] if path else [""]
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        if _DOUBLE_DOT.fullmatch(segment):
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif _DOT.fullmatch(segment):
            if last:
                segments.append("")
        else:
            segments.append(segment)
    pathname = "/" + "/".join(segments)
    if re.search(r"%2f", pathname, re.IGNORECASE):
        raise ValueError(f"invalid registry URL {json.dumps(url)}: File URL path must not include encoded / characters")
    try:
        return decode_uri_component(pathname)
    except ValueError:
        raise ValueError(f"invalid registry URL {json.dumps(url)}: URI malformed") from None


def decode_uri_component(text: str) -> str:
    """JavaScript's decodeURIComponent: strict — a malformed escape or bad UTF-8 is a ValueError."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise ValueError("URI malformed")
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("URI malformed") from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _js_value(value: object) -> str:
    """String(value) as JavaScript prints a number (NaN, Infinity, 2 not 2.0)."""
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return str(int(number)) if number.is_integer() and abs(number) < 1e21 else repr(number)
    return repr(value)


def _js_string(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


_DECIMAL: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
#: JavaScript's white space and line terminators (what Number() trims).
_JS_SPACE: Final = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_RADIX: Final = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def _js_number(text: str) -> float:
    """JavaScript's Number(text): "" is 0, 0x/0o/0b literals, ±Infinity; anything else NaN."""
    stripped = text.strip(_JS_SPACE)
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
