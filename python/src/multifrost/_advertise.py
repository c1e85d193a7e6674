"""The address a connect-mode service publishes (mirrors src/child/options.ts and curve.ts).

`advertise` if given; else `host` unless it is 127.0.0.1 or localhost (then nothing: parents use
their own loopback when an entry names no address; another loopback address, e.g. 127.0.0.2 or
::1, is published); for a wildcard `host` ("0.0.0.0", "*", "::"), this machine's first non-internal IPv4
address, in the order Node's `os.networkInterfaces()` lists them (interfaces up and running, by
index). A non-loopback bind needs CURVE (`curve=`) or `insecure=True`, as on the TS side.
"""

from __future__ import annotations

import re
import socket
import struct
import sys
from typing import Final

WILDCARD: Final = frozenset({"0.0.0.0", "*", "::", "[::]"})
#: The loopback addresses parents use when an entry names none (src/child/options.ts): not published.
_DEFAULT_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost"})
#: What src/registry/etcd-registry.ts counts as loopback (an entry only its own machine can use).
LOOPBACK: Final = re.compile(r"127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost", re.ASCII)
#: What src/actors/curve.ts counts as loopback for binding without CURVE.
_LOOPBACK_BIND: Final = re.compile(r"127\.\d+\.\d+\.\d+|::1|localhost", re.ASCII)
_HOST: Final = re.compile(r"[A-Za-z0-9._:%\[\]-]+")

# Linux ioctls on an AF_INET socket (<linux/sockios.h>) and interface flags (<net/if.h>).
_SIOCGIFFLAGS: Final = 0x8913
_SIOCGIFADDR: Final = 0x8915
_IFF_UP: Final = 0x1
_IFF_LOOPBACK: Final = 0x8
_IFF_RUNNING: Final = 0x40


def is_advertised_host(value: object) -> bool:
    """A host name or IP address a parent could connect to (no scheme, port or spaces)."""
    return isinstance(value, str) and 0 < len(value) <= 253 and _HOST.fullmatch(value) is not None


def check_bind(host: str, insecure: bool, curve: bool = False) -> None:
    """Refuses a non-loopback bind without CURVE unless `insecure=True` (src/actors/curve.ts)."""
    if not curve and not insecure and _LOOPBACK_BIND.fullmatch(host) is None:
        raise ValueError(
            f"binding {host} (not loopback) without CURVE would let any host call this service: "
            "give curve keys (curve=), or insecure=True on a network you trust"
        )


def advertised_address(host: str, advertise: str | None) -> str | None:
    """The address to publish, or None for a service on 127.0.0.1 or localhost. ValueError for a bad `advertise`."""
    if advertise is not None:
        if not is_advertised_host(advertise):
            raise ValueError(f"advertise must be a host name or an IP address (got {advertise!r})")
        if advertise in WILDCARD:
            raise ValueError(f"advertise must be an address parents can reach, not the wildcard {advertise}")
        return advertise
    if host in _DEFAULT_LOOPBACK:
        return None
    if host not in WILDCARD:
        return host
    address = first_external_ipv4()
    if address is None:
        raise ValueError(
            f"host {host} binds every interface, but this machine has no non-loopback IPv4 address to advertise: give advertise"
        )
    return address


def first_external_ipv4() -> str | None:
    """The first IPv4 address of an up, running, non-loopback interface (None if there is none)."""
    if sys.platform.startswith("linux"):
        return _first_external_ipv4_linux()
    return _default_route_ipv4()


def _first_external_ipv4_linux() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        import fcntl  # Unix only; imported here so that the module loads anywhere

        for _index, name in socket.if_nameindex():
            raw = name.encode()[:15]
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, struct.pack("16sH14s", raw, 0, b""))
                flags = struct.unpack("16sH14s", reply)[1]
                if flags & _IFF_LOOPBACK or flags & (_IFF_UP | _IFF_RUNNING) != _IFF_UP | _IFF_RUNNING:
                    continue
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("16s16s", raw, b""))
            except OSError:  # no IPv4 address on it (EADDRNOTAVAIL), or it went away
                continue
            return socket.inet_ntoa(reply[20:24])  # ifr_addr: family (2), port (2), address (4)
    return None


def _default_route_ipv4() -> str | None:
    """Elsewhere: the source address of the default route (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: routed only, nothing is sent
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else str(address)
